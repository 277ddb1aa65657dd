using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EdgeKube.Broker;

/// <summary>
/// MQTT accounts: one per node (user name = node name) plus the master's own. Passwords are stored
/// only as PBKDF2-SHA512 hashes, in the form mosquitto's password file uses (<c>$7$iterations$salt$hash</c>),
/// so the same file feeds the embedded broker and an external mosquitto. Persisted atomically in
/// <c>{data-dir}/mqtt-credentials.json</c>.
/// </summary>
public sealed class CredentialStore
{
    private const int Iterations = 1000;
    private const int SaltBytes = 12;
    private const int HashBytes = 64;

    private readonly string _path;
    private readonly object _lock = new();
    private readonly ConcurrentDictionary<string, byte[]> _verified = new(StringComparer.Ordinal);
    private Dictionary<string, string> _hashes = new(StringComparer.Ordinal);
    private DateTime _loadedStamp = DateTime.MinValue;

    public CredentialStore(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        _path = Path.Combine(dataDir, "mqtt-credentials.json");
        if (File.Exists(_path))
        {
            var file = JsonSerializer.Deserialize(File.ReadAllText(_path), CredentialJson.Default.CredentialFile)
                ?? throw new InvalidDataException($"{_path} is empty");
            _hashes = new Dictionary<string, string>(file.Users, StringComparer.Ordinal);
            _loadedStamp = File.GetLastWriteTimeUtc(_path);
        }
    }

    public IReadOnlyCollection<string> Users
    {
        get
        {
            lock (_lock)
            {
                return [.. _hashes.Keys];
            }
        }
    }

    /// <summary>The stored hashes, for writing a mosquitto password file.</summary>
    public IReadOnlyDictionary<string, string> Hashes
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<string, string>(_hashes, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>
    /// Re-reads the file when another process changed it (<c>edgekube-master node add/remove</c> run
    /// beside a running master); returns the users that are gone, whose sessions must end.
    /// </summary>
    public IReadOnlyList<string> ReloadIfChanged()
    {
        lock (_lock)
        {
            var stamp = File.Exists(_path) ? File.GetLastWriteTimeUtc(_path) : DateTime.MinValue;
            if (stamp == _loadedStamp)
            {
                return [];
            }

            var file = File.Exists(_path)
                ? JsonSerializer.Deserialize(File.ReadAllText(_path), CredentialJson.Default.CredentialFile) ?? throw new InvalidDataException($"{_path} is empty")
                : new CredentialFile(new Dictionary<string, string>());
            var fresh = new Dictionary<string, string>(file.Users, StringComparer.Ordinal);
            var gone = _hashes.Keys.Where(u => !fresh.TryGetValue(u, out var h) || h != _hashes[u]).ToList();
            foreach (var user in gone)
            {
                _verified.TryRemove(user, out _);
            }

            _hashes = fresh;
            _loadedStamp = stamp;
            return gone;
        }
    }

    public bool Exists(string user)
    {
        lock (_lock)
        {
            return _hashes.ContainsKey(user);
        }
    }

    /// <summary>Creates (or replaces) the account and returns its new random password.</summary>
    public string Create(string user)
    {
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_').TrimEnd('=');
        SetPassword(user, password);
        return password;
    }

    public void SetPassword(string user, string password)
    {
        lock (_lock)
        {
            _hashes[user] = Hash(password, RandomNumberGenerator.GetBytes(SaltBytes), Iterations);
            _verified.TryRemove(user, out _);
            Save();
        }
    }

    /// <summary>Removes the account; returns false when there was none.</summary>
    public bool Remove(string user)
    {
        lock (_lock)
        {
            _verified.TryRemove(user, out _);
            if (!_hashes.Remove(user))
            {
                return false;
            }

            Save();
            return true;
        }
    }

    /// <summary>Checks a password. Verified passwords are remembered (by a SHA-256 of them) so a reconnect storm costs one hash each.</summary>
    public bool Verify(string? user, string? password)
    {
        if (string.IsNullOrEmpty(user) || string.IsNullOrEmpty(password))
        {
            return false;
        }

        string? stored;
        lock (_lock)
        {
            _hashes.TryGetValue(user, out stored);
        }

        if (stored is null)
        {
            return false;
        }

        var quick = SHA256.HashData(Encoding.UTF8.GetBytes(password));
        if (_verified.TryGetValue(user, out var known) && CryptographicOperations.FixedTimeEquals(known, quick))
        {
            return true;
        }

        var parts = stored.Split('$');
        if (parts.Length != 5 || parts[1] != "7" || !int.TryParse(parts[2], out var iterations))
        {
            return false;
        }

        var salt = Convert.FromBase64String(parts[3]);
        var expected = Convert.FromBase64String(parts[4]);
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA512, expected.Length);
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
        {
            return false;
        }

        _verified[user] = quick;
        return true;
    }

    /// <summary>mosquitto's PBKDF2-SHA512 password hash format.</summary>
    public static string Hash(string password, byte[] salt, int iterations)
    {
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA512, HashBytes);
        return $"$7${iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    private void Save()
    {
        var json = JsonSerializer.Serialize(new CredentialFile(new SortedDictionary<string, string>(_hashes, StringComparer.Ordinal)), CredentialJson.Default.CredentialFile);
        var temp = _path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(Encoding.UTF8.GetBytes(json));
            stream.Flush(flushToDisk: true);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.Move(temp, _path, overwrite: true);
        _loadedStamp = File.GetLastWriteTimeUtc(_path);
    }
}

/// <summary>On-disk form: user → mosquitto-style hash.</summary>
public sealed record CredentialFile(IDictionary<string, string> Users);

[JsonSerializable(typeof(CredentialFile))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
internal sealed partial class CredentialJson : JsonSerializerContext;
