using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// The three PATCH bodies kubectl sends, applied to an API object held as JSON. Every method returns a new
/// object: neither the target nor the patch is changed, so a failed patch leaves nothing half-applied.
/// </summary>
public static class Patches
{
    /// <summary>Content-Type of an RFC 6902 JSON patch (kubectl rollout undo, kubectl patch --type json).</summary>
    internal const string JsonPatchMediaType = "application/json-patch+json";

    /// <summary>Content-Type of an RFC 7386 merge patch (kubectl label, annotate, scale; apply for kinds without a schema).</summary>
    internal const string MergePatchMediaType = "application/merge-patch+json";

    /// <summary>Content-Type of a Kubernetes strategic merge patch (kubectl apply, set image, taint, rollout restart, edit).</summary>
    internal const string StrategicMergePatchMediaType = "application/strategic-merge-patch+json";

    // Duplicate keys are refused at parse time: JsonObject would otherwise throw later, from deep inside a merge.
    private static readonly JsonDocumentOptions ParseOptions = new() { AllowDuplicateProperties = false };

    /// <summary>application/merge-patch+json (RFC 7386). Returns a new object; target is not mutated.</summary>
    public static JsonObject ApplyMergePatch(JsonObject target, JsonNode patch)
    {
        ArgumentNullException.ThrowIfNull(target);
        // RFC 7386 would make a non-object patch the whole result, which cannot be an API object.
        if (patch is not JsonObject patchObject)
        {
            throw new PatchException("a merge patch applied to an object must be a JSON object");
        }
        return JsonMergePatch.Apply(target, patchObject);
    }

    /// <summary>application/json-patch+json (RFC 6902: add, remove, replace, move, copy, test).</summary>
    public static JsonObject ApplyJsonPatch(JsonObject target, JsonArray patch)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(patch);
        return JsonPatch.Apply(target, patch);
    }

    /// <summary>
    /// application/strategic-merge-patch+json for the built-in kinds. apiVersion/kind pick the schema
    /// (e.g. "v1","Pod"; "v1","Node"; "apps/v1","Deployment"). Kinds without a schema merge like a JSON merge
    /// patch, with the directives honoured and every list replaced whole.
    /// </summary>
    public static JsonObject ApplyStrategicMergePatch(JsonObject target, JsonObject patch, string apiVersion, string kind)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(patch);
        return StrategicMergePatch.Apply(target, patch, StrategicMergeSchemas.For(apiVersion, kind));
    }

    /// <summary>
    /// Dispatch on the request's Content-Type (media type only, parameters ignored); throws
    /// <see cref="PatchException"/> (415-style message) for others, and for a body that is not JSON of the right shape.
    /// </summary>
    public static JsonObject Apply(string contentType, JsonObject target, string patchBody, string apiVersion, string kind)
    {
        string mediaType = (contentType ?? "").Split(';', 2)[0].Trim();
        if (mediaType.Equals(JsonPatchMediaType, StringComparison.OrdinalIgnoreCase))
        {
            return Parse(patchBody) is JsonArray operations
                ? ApplyJsonPatch(target, operations)
                : throw new PatchException("a JSON patch must be a JSON array of operations");
        }
        if (mediaType.Equals(MergePatchMediaType, StringComparison.OrdinalIgnoreCase))
        {
            return Parse(patchBody) is JsonNode patch
                ? ApplyMergePatch(target, patch)
                : throw new PatchException("a merge patch applied to an object must be a JSON object");
        }
        if (mediaType.Equals(StrategicMergePatchMediaType, StringComparison.OrdinalIgnoreCase))
        {
            return Parse(patchBody) is JsonObject patch
                ? ApplyStrategicMergePatch(target, patch, apiVersion, kind)
                : throw new PatchException("a strategic merge patch must be a JSON object");
        }
        // The API server's wording, less application/apply-patch+yaml: server-side apply is not served.
        throw new PatchException(
            "the body of the request was in an unknown format - accepted media types include: "
            + $"{JsonPatchMediaType}, {MergePatchMediaType}, {StrategicMergePatchMediaType}");
    }

    private static JsonNode? Parse(string body)
    {
        try
        {
            return JsonNode.Parse(body ?? "", documentOptions: ParseOptions);
        }
        catch (JsonException e)
        {
            throw new PatchException($"error decoding patch: {e.Message}");
        }
    }
}
