using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Store;

/// <summary>Stamping and (de)serializing stored objects; objects are kept as UTF-8 JSON so every reader gets a fresh copy.</summary>
internal static class ObjectJson
{
    public static string FormatResourceVersion(long resourceVersion) => resourceVersion.ToString(CultureInfo.InvariantCulture);

    /// <summary>A copy of <paramref name="obj"/> with <c>metadata.resourceVersion</c> set; the caller's object is left alone.</summary>
    public static JsonObject Stamp(JsonObject obj, long resourceVersion)
    {
        var copy = obj.DeepClone().AsObject();
        switch (copy["metadata"])
        {
            case JsonObject metadata:
                metadata["resourceVersion"] = FormatResourceVersion(resourceVersion);
                break;
            case null:
                copy["metadata"] = new JsonObject { ["resourceVersion"] = FormatResourceVersion(resourceVersion) };
                break;
            default:
                throw new ArgumentException("The object's metadata must be a JSON object.", nameof(obj));
        }

        return copy;
    }

    public static byte[] ToUtf8(JsonObject obj)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            obj.WriteTo(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Parses JSON this process wrote itself (history, in-memory objects), so it cannot be malformed.</summary>
    public static JsonObject Parse(ReadOnlySpan<byte> utf8) => JsonNode.Parse(utf8)!.AsObject();

    /// <summary>Parses a stored object read back from disk; null when it is not a JSON object.</summary>
    public static JsonObject? TryParseStored(ReadOnlySpan<byte> json, out string? error)
    {
        try
        {
            if (JsonNode.Parse(json) is JsonObject obj)
            {
                error = null;
                return obj;
            }

            error = "not a JSON object";
        }
        catch (JsonException e)
        {
            error = e.Message;
        }

        return null;
    }

    /// <summary>What a Deleted event carries for an object whose stored JSON was unreadable: its identity and the deletion's resourceVersion.</summary>
    public static JsonObject Tombstone(ObjectKey key, long resourceVersion)
    {
        var metadata = new JsonObject { ["name"] = key.Name };
        if (key.Namespace.Length > 0)
        {
            metadata["namespace"] = key.Namespace;
        }

        metadata["resourceVersion"] = FormatResourceVersion(resourceVersion);
        return new JsonObject { ["metadata"] = metadata };
    }
}
