using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// RFC 6902 JSON patch. Operations apply in order to a copy of the target; the first one that fails fails the
/// whole patch. Error texts follow the json-patch library the API server uses, where that is practical.
/// </summary>
internal static class JsonPatch
{
    public static JsonObject Apply(JsonObject target, JsonArray patch)
    {
        JsonNode? document = target.DeepClone();
        for (int i = 0; i < patch.Count; i++)
        {
            if (patch[i] is not JsonObject operation)
            {
                throw new PatchException($"invalid JSON patch: operation {i} is not a JSON object");
            }
            document = ApplyOperation(document, operation);
        }
        return document as JsonObject ?? throw new PatchException("the patched document is not a JSON object");
    }

    private static JsonNode? ApplyOperation(JsonNode? document, JsonObject operation)
    {
        string op = RequiredString(operation, "op", "");
        string path = RequiredString(operation, "path", op);
        var tokens = JsonPointer.Parse(path);
        switch (op)
        {
            case "add":
                return Add(document, tokens, path, op, RequiredValue(operation, op));
            case "remove":
                return Remove(document, tokens, path, op, out _);
            case "replace":
                return Replace(document, tokens, path, RequiredValue(operation, op));
            case "move":
            {
                string from = RequiredString(operation, "from", op);
                var fromTokens = JsonPointer.Parse(from);
                if (!TryGet(document, fromTokens, out _))
                {
                    throw new PatchException($"move operation does not apply: doc is missing from path: {from}: missing value");
                }
                if (from == path)
                {
                    return document;
                }
                // A value cannot be moved into itself (RFC 6902 section 4.4).
                if (path.StartsWith(from + "/", StringComparison.Ordinal))
                {
                    throw new PatchException($"move operation does not apply: \"{path}\" is a child of \"{from}\"");
                }
                document = Remove(document, fromTokens, from, op, out var value);
                return Add(document, tokens, path, op, value);
            }
            case "copy":
            {
                string from = RequiredString(operation, "from", op);
                if (!TryGet(document, JsonPointer.Parse(from), out var value))
                {
                    throw new PatchException($"copy operation does not apply: doc is missing from path: {from}: missing value");
                }
                return Add(document, tokens, path, op, value?.DeepClone());
            }
            case "test":
            {
                var expected = RequiredValue(operation, op);
                if (!TryGet(document, tokens, out var actual) || !JsonEquality.Equal(actual, expected))
                {
                    throw new PatchException($"testing value {path} failed: test failed");
                }
                return document;
            }
            default:
                throw new PatchException($"Unexpected kind: {op}");
        }
    }

    private static JsonNode? Add(JsonNode? document, string[] tokens, string path, string op, JsonNode? value)
    {
        if (tokens.Length == 0)
        {
            return value;
        }
        string last = tokens[^1];
        switch (Container(document, tokens, path, op))
        {
            case JsonObject parent:
                parent[last] = value;
                break;
            case JsonArray parent when last == "-":
                parent.Add(value);
                break;
            case JsonArray parent:
                // Adding may target one past the end, unlike every other operation.
                if (!JsonPointer.TryParseIndex(last, out int index) || index > parent.Count)
                {
                    throw InvalidIndex(last);
                }
                parent.Insert(index, value);
                break;
            default:
                throw MissingPath(op, path);
        }
        return document;
    }

    private static JsonNode? Remove(JsonNode? document, string[] tokens, string path, string op, out JsonNode? removed)
    {
        if (tokens.Length == 0)
        {
            throw new PatchException($"{op} operation does not apply: the whole document cannot be removed");
        }
        string last = tokens[^1];
        switch (Container(document, tokens, path, op))
        {
            case JsonObject parent:
                if (!parent.TryGetPropertyValue(last, out removed))
                {
                    throw new PatchException($"Unable to remove nonexistent key: {last}: missing value");
                }
                parent.Remove(last);
                break;
            case JsonArray parent:
                int index = ExistingIndex(parent, last);
                removed = parent[index];
                parent.RemoveAt(index);
                break;
            default:
                throw MissingPath(op, path);
        }
        return document;
    }

    private static JsonNode? Replace(JsonNode? document, string[] tokens, string path, JsonNode? value)
    {
        if (tokens.Length == 0)
        {
            return value;
        }
        string last = tokens[^1];
        switch (Container(document, tokens, path, "replace"))
        {
            case JsonObject parent when parent.ContainsKey(last):
                parent[last] = value;
                break;
            case JsonArray parent:
                parent[ExistingIndex(parent, last)] = value;
                break;
            default:
                throw new PatchException($"replace operation does not apply: doc is missing key: {path}: missing value");
        }
        return document;
    }

    // The object or array that holds the value the pointer names.
    private static JsonNode Container(JsonNode? document, string[] tokens, string path, string op)
    {
        var node = document;
        for (int i = 0; i < tokens.Length - 1; i++)
        {
            if (!TryChild(node, tokens[i], out node))
            {
                throw MissingPath(op, path);
            }
        }
        return node ?? throw MissingPath(op, path);
    }

    private static bool TryGet(JsonNode? document, string[] tokens, out JsonNode? value)
    {
        value = document;
        foreach (var token in tokens)
        {
            if (!TryChild(value, token, out value))
            {
                return false;
            }
        }
        return true;
    }

    private static bool TryChild(JsonNode? node, string token, out JsonNode? child)
    {
        child = null;
        switch (node)
        {
            case JsonObject parent:
                return parent.TryGetPropertyValue(token, out child);
            case JsonArray parent when JsonPointer.TryParseIndex(token, out int index) && index < parent.Count:
                child = parent[index];
                return true;
            default:
                return false;
        }
    }

    private static int ExistingIndex(JsonArray array, string token) =>
        JsonPointer.TryParseIndex(token, out int index) && index < array.Count ? index : throw InvalidIndex(token);

    private static string RequiredString(JsonObject operation, string member, string op)
    {
        if (operation.TryGetPropertyValue(member, out var value) && value is JsonValue text
            && text.GetValueKind() == JsonValueKind.String)
        {
            return text.GetValue<string>();
        }
        string what = op.Length == 0 ? "operation" : $"{op} operation";
        throw new PatchException($"invalid JSON patch: {what} {operation.ToJsonString()} has no string \"{member}\"");
    }

    // "value" must be present but may be null; the copy keeps the patch itself untouched.
    private static JsonNode? RequiredValue(JsonObject operation, string op) =>
        operation.TryGetPropertyValue("value", out var value)
            ? value?.DeepClone()
            : throw new PatchException($"invalid JSON patch: {op} operation {operation.ToJsonString()} has no \"value\"");

    private static PatchException MissingPath(string op, string path) =>
        new($"{op} operation does not apply: doc is missing path: \"{path}\": missing value");

    private static PatchException InvalidIndex(string token) =>
        new($"Unable to access invalid index: {token}: invalid index referenced");
}
