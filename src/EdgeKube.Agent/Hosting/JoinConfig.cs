using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Pods;

namespace EdgeKube.Agent.Hosting;

/// <summary>
/// The agent's config file (<c>--config</c>), as <c>edgekube-master node add NAME</c> prints it:
/// the node's name and how to reach the broker, plus optional agent settings. YAML or JSON.
/// </summary>
public sealed record JoinConfig
{
    public string? ApiVersion { get; init; }

    public string? Kind { get; init; }

    public string? NodeName { get; init; }

    public BrokerConfig? Broker { get; init; }

    public string? PodManifestPath { get; init; }

    public string? StateDir { get; init; }

    public string? ContainerdSocket { get; init; }

    public string? NodeIp { get; init; }

    /// <summary>Sensors, LEDs, thermal thresholds and device resources (docs/agent.md, "The board").</summary>
    public Board.BoardConfig? Board { get; init; }

    /// <summary>Reads and checks a config file; throws <see cref="InvalidConfigException"/> naming the setting.</summary>
    public static JoinConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigException($"--config {path}: cannot read: {e.Message}");
        }

        JoinConfig config;
        try
        {
            var json = PodManifest.ToJsonDocuments(text).SingleOrDefault() ?? throw new InvalidConfigException($"--config {path}: the file is empty");
            config = JsonSerializer.Deserialize(json, JoinConfigJson.Default.JoinConfig) ?? throw new InvalidConfigException($"--config {path}: the file is empty");
        }
        catch (InvalidPodException e)
        {
            throw new InvalidConfigException($"--config {path}: {e.Message}");
        }
        catch (JsonException e)
        {
            var setting = e.Path?.TrimStart('$', '.');
            throw new InvalidConfigException(e.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? $"--config {path}: unknown setting {setting}"
                : $"--config {path}: setting {setting} has the wrong type");
        }
        catch (InvalidOperationException)
        {
            throw new InvalidConfigException($"--config {path}: expected one YAML document");
        }

        if (config.Broker is { } broker)
        {
            if (string.IsNullOrWhiteSpace(broker.Url) || !Uri.TryCreate(broker.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("mqtt" or "mqtts"))
            {
                throw new InvalidConfigException($"--config {path}: broker.url \"{broker.Url}\" must be mqtt://host:port or mqtts://host:port");
            }

            if (string.IsNullOrEmpty(broker.Username) || string.IsNullOrEmpty(broker.Password))
            {
                throw new InvalidConfigException($"--config {path}: broker.username and broker.password are required (every MQTT client authenticates)");
            }

            if (broker.CaData is { Length: > 0 } && DecodeCa(broker.CaData) is null)
            {
                throw new InvalidConfigException($"--config {path}: broker.caData is not a PEM certificate or the base64 of one");
            }

            if (broker.KeepAliveSeconds is < 1 or > 3600)
            {
                throw new InvalidConfigException($"--config {path}: broker.keepAliveSeconds must be between 1 and 3600");
            }
        }

        return config;
    }

    /// <summary>The broker options, or null when the config names no broker.</summary>
    public BrokerOptions? ToBrokerOptions()
    {
        if (Broker is not { } b)
        {
            return null;
        }

        var pem = b.CaData is { Length: > 0 } data ? DecodeCa(data) : null;

        return new BrokerOptions
        {
            Url = new Uri(b.Url!),
            Username = b.Username!,
            Password = b.Password!,
            CaPem = pem,
            TopicPrefix = b.TopicPrefix ?? Protocol.Topics.DefaultPrefix,
            KeepAlive = TimeSpan.FromSeconds(b.KeepAliveSeconds ?? 15),
        };
    }

    /// <summary>The PEM of a CA given as PEM or as base64 of PEM; null when it is neither or holds no certificate.</summary>
    private static string? DecodeCa(string data)
    {
        try
        {
            var pem = data.Contains("-----BEGIN", StringComparison.Ordinal) ? data : System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(data));
            using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
            return pem;
        }
        catch (Exception e) when (e is FormatException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            return null;
        }
    }
}

/// <summary>The broker part of the join config.</summary>
public sealed record BrokerConfig
{
    public string? Url { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    /// <summary>The CA certificate for mqtts, PEM or base64 of PEM.</summary>
    public string? CaData { get; init; }

    public string? TopicPrefix { get; init; }

    public int? KeepAliveSeconds { get; init; }
}

/// <summary>A config file could not be used; the message names the setting.</summary>
public sealed class InvalidConfigException(string message) : Exception(message);

[JsonSerializable(typeof(JoinConfig))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
internal sealed partial class JoinConfigJson : JsonSerializerContext;
