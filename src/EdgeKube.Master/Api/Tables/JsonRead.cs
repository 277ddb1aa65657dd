using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// Tolerant reads from stored objects: a missing or mistyped field reads as Go's zero value, as it would
/// after the API server decoded the object into its typed struct, so one odd field never fails a whole list.
/// </summary>
internal static class JsonRead
{
    public static JsonNode? Node(JsonNode? node, params ReadOnlySpan<string> path)
    {
        foreach (var name in path)
        {
            if (node is not JsonObject obj || !obj.TryGetPropertyValue(name, out node))
            {
                return null;
            }
        }

        return node;
    }

    public static JsonObject? Object(JsonNode? node, params ReadOnlySpan<string> path) => Node(node, path) as JsonObject;

    public static JsonArray? Array(JsonNode? node, params ReadOnlySpan<string> path) => Node(node, path) as JsonArray;

    /// <summary>The objects of an array field, skipping anything that is not an object.</summary>
    public static IEnumerable<JsonObject> Objects(JsonNode? node, params ReadOnlySpan<string> path) =>
        Array(node, path)?.OfType<JsonObject>() ?? [];

    public static bool Has(JsonNode? node, params ReadOnlySpan<string> path) =>
        Node(node, path) is { } found && found.GetValueKind() != JsonValueKind.Null;

    public static string String(JsonNode? node, params ReadOnlySpan<string> path) =>
        Node(node, path) is JsonValue value && value.TryGetValue(out string? text) ? text : "";

    public static long Int(JsonNode? node, params ReadOnlySpan<string> path) => IntOrNull(node, path) ?? 0;

    public static long? IntOrNull(JsonNode? node, params ReadOnlySpan<string> path)
    {
        if (Node(node, path) is not JsonValue value)
        {
            return null;
        }

        if (value.TryGetValue(out long number))
        {
            return number;
        }

        // Whole numbers written as 3.0 by some clients still count.
        return value.TryGetValue(out double real) && real == Math.Floor(real) ? (long)real : null;
    }

    public static bool Bool(JsonNode? node, params ReadOnlySpan<string> path) =>
        Node(node, path) is JsonValue value && value.TryGetValue(out bool flag) && flag;

    /// <summary>A metav1.Time or MicroTime (RFC 3339); null when unset or unparseable (Go's zero time).</summary>
    public static DateTimeOffset? Time(JsonNode? node, params ReadOnlySpan<string> path)
    {
        var text = String(node, path);
        return text.Length > 0 && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time
            : null;
    }

    /// <summary>A string map such as metadata.labels, in ordinal key order (Go prints maps sorted).</summary>
    public static SortedDictionary<string, string> StringMap(JsonNode? node, params ReadOnlySpan<string> path)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (Object(node, path) is { } obj)
        {
            foreach (var (key, value) in obj)
            {
                map[key] = value is JsonValue v && v.TryGetValue(out string? text) ? text : "";
            }
        }

        return map;
    }
}
