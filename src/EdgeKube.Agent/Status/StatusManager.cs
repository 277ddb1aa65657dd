using System.Buffers;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Json;
using EdgeKube.Agent.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Status;

/// <summary>
/// The only writer of pod status. Keeps the latest status of every pod, persists it under
/// <c>{state-dir}/status</c>, and tells its subscribers on change only.
/// </summary>
/// <remarks>
/// A change is found by comparing a 128-bit digest (XXH128) of the status' UTF-8 JSON, written into a
/// per-thread buffer, with the digest of the one held. Holding the JSON itself cost about 2 KB per pod
/// (UTF-16), more than the status object; the digest is 16 bytes, and an unchanged status, the common case
/// on every relist, allocates nothing.
/// </remarks>
public sealed partial class StatusManager
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_json;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    private readonly object _lock = new();
    private readonly Dictionary<string, (V1PodStatus Status, UInt128 Digest)> _statuses = new(StringComparer.Ordinal);
    private readonly string _dir;
    private readonly ILogger<StatusManager> _logger;

    public StatusManager(string stateDir, ILogger<StatusManager> logger)
    {
        _dir = Path.Combine(stateDir, "status");
        _logger = logger;
        Directory.CreateDirectory(_dir);
        AtomicFile.CleanTemporaries(_dir);
    }

    /// <summary>Raised after a pod's status changed: uid and the new status.</summary>
    public event Action<string, V1PodStatus>? StatusChanged;

    /// <summary>Raised when a pod's status is dropped because the pod is gone.</summary>
    public event Action<string>? StatusRemoved;

    public long Updates { get; private set; }

    /// <summary>Loads persisted statuses (start times and condition transition times survive restarts).</summary>
    public void Load()
    {
        foreach (var file in Directory.EnumerateFiles(_dir, "*.json"))
        {
            try
            {
                var record = JsonSerializer.Deserialize(File.ReadAllText(file), StoreJsonContext.Default.PersistedStatus)
                    ?? throw new JsonException("empty");
                var status = KubeJson.DeserializePodStatus(record.Status) ?? throw new JsonException("empty status");
                lock (_lock)
                {
                    _statuses[record.Uid] = (status, Digest(status));
                }
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException or FormatException)
            {
                LogCorruptFile(file, e.Message);
            }
        }
    }

    public V1PodStatus? Get(string uid)
    {
        lock (_lock)
        {
            return _statuses.TryGetValue(uid, out var s) ? s.Status : null;
        }
    }

    /// <summary>Every status held, by pod uid.</summary>
    public IReadOnlyList<(string Uid, V1PodStatus Status)> All()
    {
        lock (_lock)
        {
            return [.. _statuses.Select(kv => (kv.Key, kv.Value.Status))];
        }
    }

    /// <summary>Sets a pod's status; returns true when it changed.</summary>
    public bool Set(string uid, V1PodStatus status)
    {
        var utf8 = Serialize(status);
        var digest = XxHash128.HashToUInt128(utf8);
        lock (_lock)
        {
            if (_statuses.TryGetValue(uid, out var old) && old.Digest == digest)
            {
                return false;
            }

            _statuses[uid] = (status, digest);
            Updates++;
        }

        // Taken before the subscribers run (the thread's buffer is only valid until its next use), for the file.
        var json = Encoding.UTF8.GetString(utf8);

        // Subscribers (the publisher to the master) first, the disk after, and without fsync: the copy on
        // disk only keeps start and transition times across a restart (a lost one is recomputed), and
        // flushing it would put two fsyncs beside every pod start's own disk work.
        StatusChanged?.Invoke(uid, status);
        lock (_lock)
        {
            // Unless the pod was removed or set to another status meanwhile (that write is the newer one).
            if (_statuses.TryGetValue(uid, out var current) && current.Digest == digest)
            {
                try
                {
                    AtomicFile.WriteAllText(Path.Combine(_dir, uid + ".json"), JsonSerializer.Serialize(new PersistedStatus(uid, json), StoreJsonContext.Default.PersistedStatus), durable: false);
                }
                catch (IOException e)
                {
                    LogPersistFailed(uid, e.Message);
                }
            }
        }

        return true;
    }

    public void Remove(string uid)
    {
        lock (_lock)
        {
            _statuses.Remove(uid);
            AtomicFile.Delete(Path.Combine(_dir, uid + ".json"));
        }

        // Also when there was no status: listeners learn the pod is gone even if it never reported one.
        StatusRemoved?.Invoke(uid);
    }

    /// <summary>The status as UTF-8 JSON, in this thread's buffer: valid until the thread's next call.</summary>
    private static ReadOnlySpan<byte> Serialize(V1PodStatus status)
    {
        var json = t_json ??= new ArrayBufferWriter<byte>(4096);
        json.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(json);
        writer.Reset(json);
        KubeJson.Serialize(status, writer);
        var written = json.WrittenSpan;
        if (json.Capacity > 64 * 1024)
        {
            // One huge status (thousands of containers) does not pin its buffer to the thread for good.
            t_json = null;
            t_writer = null;
        }

        return written;
    }

    private static UInt128 Digest(V1PodStatus status) => XxHash128.HashToUInt128(Serialize(status));

    [LoggerMessage(EventId = 500, Level = LogLevel.Error, Message = "Skipping unreadable status file {File}: {Error}")]
    private partial void LogCorruptFile(string file, string error);

    [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "Could not persist status of pod {Uid}: {Error}")]
    private partial void LogPersistFailed(string uid, string error);
}
