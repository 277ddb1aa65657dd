using System.Text.Json.Serialization;

namespace EdgeKube.Protocol;

/// <summary>One entry of a node's pod index: which pod, which incarnation, which version.</summary>
public sealed record PodIndexEntry(
    [property: JsonPropertyName("namespace")] string Namespace,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("uid")] string Uid,
    [property: JsonPropertyName("resourceVersion")] string ResourceVersion);

/// <summary>
/// The pods desired on a node, published retained next to the pods themselves, so a node that was
/// away sees deletions after any broker restart: a pod topic not in the index is not desired.
/// </summary>
public sealed record PodIndex(
    [property: JsonPropertyName("resourceVersion")] string ResourceVersion,
    [property: JsonPropertyName("items")] IReadOnlyList<PodIndexEntry> Items);

/// <summary>Presence payloads.</summary>
public static class Presence
{
    public const string Online = "online";
    public const string Offline = "offline";
}

/// <summary>
/// The heartbeat a node sends on its lease topic (retained, QoS 0). The master times the renewal by
/// when it hears it, so no clock is sent. <paramref name="DurationSeconds"/>: how long the lease holds
/// while the node's MQTT session is open (it is renewed every quarter of it). <paramref name="Status"/>:
/// the <see cref="StatusDigest"/> of the node status the node last published, so the master sees
/// whether the copy it holds is that one and asks for the status again when not.
/// </summary>
public sealed record Lease(
    [property: JsonPropertyName("durationSeconds")] int DurationSeconds,
    [property: JsonPropertyName("status"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Status = null);

/// <summary>The short digest of a published node status that a <see cref="Lease"/> carries.</summary>
public static class StatusDigest
{
    /// <summary>
    /// XXH64 over the exact payload, as 16 lower-case hex digits. Not a cryptographic hash, and need not be: it
    /// only tells whether the master holds the status the node last sent. It is computed in managed code, so
    /// the agent needs no libssl (TLS to the broker is optional; the package only recommends libssl).
    /// </summary>
    public static string Of(ReadOnlySpan<byte> payload) => System.IO.Hashing.XxHash64.HashToUInt64(payload).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// Request on <c>nodes/{node}/rpc/logs</c>: a container's log from <paramref name="Offset"/> (bytes into
/// the CRI log file), at most <paramref name="TailLines"/> lines when given. <c>kubectl logs -f</c> is
/// served by asking again from the returned offset.
/// </summary>
public sealed record LogsRequest(
    [property: JsonPropertyName("namespace")] string Namespace,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("container")] string? Container,
    [property: JsonPropertyName("tailLines")] long? TailLines,
    [property: JsonPropertyName("previous")] bool Previous,
    [property: JsonPropertyName("offset")] long? Offset,
    [property: JsonPropertyName("timestamps")] bool Timestamps);

/// <summary>The reply: the log text (CRI framing removed), where to continue, or an error as kubectl would print it.</summary>
public sealed record LogsReply(
    [property: JsonPropertyName("content")] string Content,
    [property: JsonPropertyName("offset")] long Offset,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("running")] bool Running);

/// <summary>One node's pod CIDR and the address that reaches it: the host route <c>{PodCidr} via {NodeIp}</c>.</summary>
public sealed record NodeRoute(
    [property: JsonPropertyName("node")] string Node,
    [property: JsonPropertyName("podCIDR")] string PodCidr,
    [property: JsonPropertyName("nodeIP")] string NodeIp);

/// <summary>
/// The cluster's pod routes, published retained on <c>cluster/routes</c>: every node with a pod CIDR
/// and an InternalIP. Each agent keeps a host route to every other node's pod CIDR via that node's
/// address (the host-gw model), and drops the routes of nodes that left the table.
/// </summary>
public sealed record RouteTable(
    [property: JsonPropertyName("clusterCIDR")] string ClusterCidr,
    [property: JsonPropertyName("routes")] IReadOnlyList<NodeRoute> Routes);

/// <summary>
/// On <c>nodes/{node}/identify</c>, retained, while <c>kubectl annotate node NAME edgekube.io/identify=30s</c>
/// is in force: flash the LEDs for <paramref name="Seconds"/> from when it arrives (boards' clocks are not
/// trusted). <paramref name="Until"/> is the master's end time, when it clears the topic (an empty payload:
/// stop). A node handles a payload once: the same one again (a reconnect) changes nothing.
/// </summary>
public sealed record IdentifyRequest(
    [property: JsonPropertyName("duration")] string Duration,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("until")] DateTimeOffset Until);

/// <summary>The node's labels and annotations that the protocol gives a meaning (docs/agent.md, docs/protocol.md).</summary>
public static class NodeKeys
{
    /// <summary>Annotation set by a person: flash the board's LEDs for this Go duration.</summary>
    public const string Identify = "edgekube.io/identify";

    /// <summary>Annotation the master sets while an identify runs: when it ends (RFC 3339).</summary>
    public const string IdentifyUntil = "edgekube.io/identify-until";

    /// <summary>Annotation the node reports: its sensors, readings and errors as a JSON array (the structured form).</summary>
    public const string Sensors = "edgekube.io/sensors";

    /// <summary>Label prefix the node reports, one label per sensor present: <c>sensors.edgekube.io/{sensor}</c> = its type.</summary>
    public const string SensorLabelPrefix = "sensors.edgekube.io/";

    /// <summary>The prefix of a sensor's annotations: <c>edgekube.io/{sensor}.{quantity}</c> and <c>edgekube.io/{sensor}.error</c>.</summary>
    public static string SensorAnnotationPrefix(string sensor) => $"edgekube.io/{sensor}.";
}

/// <summary>Source-generated JSON for the protocol's own messages (trimming- and AOT-safe).</summary>
[JsonSerializable(typeof(LogsRequest))]
[JsonSerializable(typeof(LogsReply))]
[JsonSerializable(typeof(PodIndex))]
[JsonSerializable(typeof(Lease))]
[JsonSerializable(typeof(RouteTable))]
[JsonSerializable(typeof(IdentifyRequest))]
public sealed partial class ProtocolJson : JsonSerializerContext;
