using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;

namespace EdgeKube.Agent.Json;

/// <summary>
/// Kubernetes JSON for the few API types the agent reads and writes (pods, their statuses, its node).
/// KubernetesClient's own context resolves types through <c>GetTypeInfo(Type)</c> over every model of the
/// API, which keeps all of them (and their serializers) in the NativeAOT binary; this context holds only
/// what the agent uses, and the trimmer keeps only that.
/// </summary>
internal static class KubeJson
{
    public static string Serialize(V1Pod pod) => JsonSerializer.Serialize(pod, KubeJsonContext.Default.V1Pod);

    public static string Serialize(V1PodStatus status) => JsonSerializer.Serialize(status, KubeJsonContext.Default.V1PodStatus);

    public static string Serialize(V1PodList pods) => JsonSerializer.Serialize(pods, KubeJsonContext.Default.V1PodList);

    public static string Serialize(V1Node node) => JsonSerializer.Serialize(node, KubeJsonContext.Default.V1Node);

    /// <summary>The node as UTF-8 JSON, written to <paramref name="output"/>.</summary>
    public static void Serialize(V1Node node, System.Buffers.IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output);
        JsonSerializer.Serialize(writer, node, KubeJsonContext.Default.V1Node);
    }

    /// <summary>The pod status as UTF-8 JSON, through <paramref name="writer"/> (flushed).</summary>
    public static void Serialize(V1PodStatus status, Utf8JsonWriter writer)
    {
        JsonSerializer.Serialize(writer, status, KubeJsonContext.Default.V1PodStatus);
        writer.Flush();
    }

    public static string Serialize(V1Container container) => JsonSerializer.Serialize(container, KubeJsonContext.Default.V1Container);

    public static V1Pod? DeserializePod(string json) => JsonSerializer.Deserialize(json, KubeJsonContext.Default.V1Pod);

    /// <summary>A deep copy, so the caller can set fields without touching the stored pod.</summary>
    public static V1Pod Clone(V1Pod pod) => DeserializePod(Serialize(pod)) ?? throw new JsonException("a pod serialized to null");

    public static V1PodStatus? DeserializePodStatus(string json) => JsonSerializer.Deserialize(json, KubeJsonContext.Default.V1PodStatus);
}

/// <summary>
/// Kubernetes times (metav1.Time and MicroTime): written in UTC with six fractional digits, none for whole seconds (as
/// KubernetesClient writes them), read from RFC 3339 with any
/// number of fractional digits (Go writes up to nine; .NET parses seven).
/// </summary>
internal sealed class RfcDateTimeConverter : JsonConverter<DateTime>
{
    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString() ?? throw new JsonException("a time must be a string");
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot > 0)
        {
            var end = dot + 1;
            while (end < text.Length && char.IsAsciiDigit(text[end]))
            {
                end++;
            }

            if (end - dot - 1 > 7)
            {
                text = string.Concat(text.AsSpan(0, dot + 8), text.AsSpan(end));
            }
        }

        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value))
        {
            throw new JsonException($"\"{text}\" is not an RFC 3339 time");
        }

        return value.UtcDateTime;
    }

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options)
    {
        var utc = value.ToUniversalTime();
        var format = utc.Ticks % TimeSpan.TicksPerSecond == 0 ? "yyyy'-'MM'-'dd'T'HH':'mm':'ss'Z'" : "yyyy'-'MM'-'dd'T'HH':'mm':'ss.ffffff'Z'";
        writer.WriteStringValue(utc.ToString(format, CultureInfo.InvariantCulture));
    }
}

[JsonSerializable(typeof(V1Pod))]
[JsonSerializable(typeof(V1PodList))]
[JsonSerializable(typeof(V1Node))]
[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    Converters = [typeof(RfcDateTimeConverter)])]
internal sealed partial class KubeJsonContext : JsonSerializerContext;
