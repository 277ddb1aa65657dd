using System.Globalization;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api;

/// <summary>Small helpers over an object's JSON (metadata, strings, times) shared by the API server, controllers and bridge.</summary>
public static class ObjectMeta
{
    public static JsonObject Metadata(this JsonObject obj)
    {
        if (obj["metadata"] is JsonObject meta)
        {
            return meta;
        }

        meta = new JsonObject();
        obj["metadata"] = meta;
        return meta;
    }

    public static string Name(this JsonObject obj) => obj.Metadata().Str("name") ?? string.Empty;

    public static string Namespace(this JsonObject obj) => obj.Metadata().Str("namespace") ?? string.Empty;

    public static string Uid(this JsonObject obj) => obj.Metadata().Str("uid") ?? string.Empty;

    public static long ResourceVersion(this JsonObject obj) =>
        long.TryParse(obj.Metadata().Str("resourceVersion"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var rv) ? rv : 0;

    /// <summary>A string property, or null when absent or not a string.</summary>
    public static string? Str(this JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public static JsonObject Obj(this JsonObject obj, string name)
    {
        if (obj[name] is JsonObject o)
        {
            return o;
        }

        o = new JsonObject();
        obj[name] = o;
        return o;
    }

    public static Dictionary<string, string> Labels(this JsonObject obj) => StringMap(obj.Metadata()["labels"]);

    public static Dictionary<string, string> StringMap(JsonNode? node)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (node is JsonObject o)
        {
            foreach (var (k, v) in o)
            {
                if (v is JsonValue value && value.TryGetValue<string>(out var s))
                {
                    map[k] = s;
                }
            }
        }

        return map;
    }

    /// <summary>RFC 3339 in UTC with second precision, as Kubernetes writes times.</summary>
    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static DateTimeOffset? ParseTime(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) ? t : null;
}
