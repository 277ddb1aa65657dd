using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// Kubernetes strategic merge patch, as the API server applies it (apimachinery's strategicpatch with
/// MergeParallelList and IgnoreUnmatchedNulls): objects merge recursively and <c>null</c> deletes; lists
/// with a merge key merge element by element; lists of primitives tagged merge are sets; other lists are
/// replaced. Directives: <c>$patch</c> (replace/delete), <c>$retainKeys</c>, <c>$setElementOrder/x</c>,
/// <c>$deleteFromPrimitiveList/x</c>.
/// </summary>
/// <remarks>
/// List order follows upstream: <c>$setElementOrder</c> first, then the patch list's order, then the live
/// list's; elements only on the server are interleaved by their live position, so an element the patch adds
/// without <c>$setElementOrder</c> lands before the server's remaining ones (what kubectl patch users see).
/// Values the live object lacks are taken from the patch with their nulls and directives resolved, where
/// upstream copies some of them verbatim and leaves that to the typed decoding that follows.
/// </remarks>
internal static class StrategicMergePatch
{
    private const string PatchDirective = "$patch";
    private const string RetainKeysDirective = "$retainKeys";
    private const string SetElementOrderPrefix = "$setElementOrder/";
    private const string DeleteFromPrimitiveListPrefix = "$deleteFromPrimitiveList/";

    // Texts of apimachinery's mergepatch errors, which the API server returns as they are.
    private const string BadRetainKeys = "invalid patch format of retainKeys";
    private const string RetainKeysMismatch = "patch content doesn't match retainKeys list";
    private const string BadSetElementOrder = "invalid patch format of setElementOrder list";
    private const string BadPrimitiveList = "invalid patch format of primitive list";

    public static JsonObject Apply(JsonObject target, JsonObject patch, PatchType? type) =>
        MergeObject(target.DeepClone().AsObject(), patch, type);

    // original is our own copy and may be changed in place; the patch is only read, so what is taken from it is
    // cloned. Returns original, or a new object when a $patch directive replaces it.
    private static JsonObject MergeObject(JsonObject original, JsonObject patch, PatchType? type)
    {
        if (patch.TryGetPropertyValue(PatchDirective, out var directive))
        {
            return AsString(directive) switch
            {
                "replace" => MergeFields([], patch, type),
                "delete" => [],
                _ => throw new PatchException($"unknown patch type: {AsString(directive) ?? Text(directive)} in map: {Text(patch)}"),
            };
        }
        return MergeFields(original, patch, type);
    }

    private static JsonObject MergeFields(JsonObject original, JsonObject patch, PatchType? type)
    {
        RetainKeys(original, patch);
        var ordered = MergeOrderedLists(original, patch, type);
        foreach (var (name, value) in patch)
        {
            if (IsDirective(name) || ordered.Contains(name))
            {
                continue;
            }
            if (value is null)
            {
                original.Remove(name);
                continue;
            }
            original.TryGetPropertyValue(name, out var current);
            var merged = Merge(current, value, type?.Field(name));
            if (!ReferenceEquals(merged, current))
            {
                original[name] = merged;
            }
        }
        DeleteFromPrimitiveLists(original, patch);
        return original;
    }

    private static JsonNode Merge(JsonNode? current, JsonNode value, PatchField? field) => (current, value) switch
    {
        (JsonObject currentObject, JsonObject patchObject) => MergeObject(currentObject, patchObject, field?.Type),
        (JsonArray currentList, JsonArray patchList) when field is { Merge: true } => MergeList(currentList, patchList, field),
        _ => Materialize(value, field),
    };

    // A patch value for a field the live object lacks (or holds with another JSON type): merged into an empty one.
    private static JsonNode Materialize(JsonNode value, PatchField? field) => value switch
    {
        JsonObject patchObject => MergeObject([], patchObject, field?.Type),
        JsonArray patchList when field is { Merge: true } => MergeList([], patchList, field),
        _ => value.DeepClone(),
    };

    private static JsonArray MergeList(JsonArray original, JsonArray patch, PatchField field)
    {
        var live = Detach(original);
        if (live.Count == 0 && patch.Count == 0)
        {
            return [];
        }
        if (!ElementsAreObjects(live, patch))
        {
            var set = new List<JsonNode?>();
            foreach (var item in live.Concat(patch.Select(p => p?.DeepClone())))
            {
                if (!set.Any(s => JsonEquality.Equal(s, item)))
                {
                    set.Add(item);
                }
            }
            return [.. Ordered(set, [.. patch], live, null)];
        }

        string mergeKey = field.MergeKey ?? throw new PatchException("cannot merge lists without merge key");
        var elements = new List<JsonObject>();
        bool replace = false;
        foreach (var element in patch.Cast<JsonObject>())
        {
            if (!element.TryGetPropertyValue(PatchDirective, out var directive))
            {
                elements.Add(element);
                continue;
            }
            switch (AsString(directive))
            {
                case "delete":
                    var key = MergeKeyOf(element, mergeKey);
                    live.RemoveAll(e => HasKey(e, mergeKey, key));
                    break;
                case "replace":
                    // The list becomes the patch's other elements; keep going to validate the rest.
                    replace = true;
                    break;
                case "merge":
                    throw new PatchException("merging lists cannot yet be specified in the patch");
                default:
                    throw new PatchException($"unknown patch type: {AsString(directive) ?? Text(directive)} in map: {Text(element)}");
            }
        }
        if (replace)
        {
            return [.. elements.Select(e => MergeObject([], e, field.Type))];
        }

        var merged = new List<JsonNode?>(live);
        foreach (var element in elements)
        {
            var key = MergeKeyOf(element, mergeKey);
            int index = merged.FindIndex(e => HasKey(e, mergeKey, key));
            if (index >= 0)
            {
                merged[index] = MergeObject(merged[index]!.AsObject(), element, field.Type);
            }
            else
            {
                merged.Add(MergeObject([], element, field.Type));
            }
        }
        return [.. Ordered(merged, [.. elements], live, mergeKey)];
    }

    // $setElementOrder/x: merges list x (when the patch has it) and puts the result in the directive's order.
    // Returns the fields done here, for the main loop to skip.
    private static HashSet<string> MergeOrderedLists(JsonObject original, JsonObject patch, PatchType? type)
    {
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (directiveName, value) in patch)
        {
            if (!directiveName.StartsWith(SetElementOrderPrefix, StringComparison.Ordinal))
            {
                continue;
            }
            string name = directiveName[SetElementOrderPrefix.Length..];
            if (name.Length == 0 || value is not JsonArray order)
            {
                throw new PatchException(BadSetElementOrder);
            }
            var field = type?.Field(name);
            // On an atomic list the patch's list replaces the live one, order and all.
            if (field is not { Merge: true })
            {
                continue;
            }
            original.TryGetPropertyValue(name, out var current);
            bool inPatch = patch.TryGetPropertyValue(name, out var patchValue);
            // A null or a non-list on either side is a deletion or a replacement, which the main loop does.
            if ((current is not null and not JsonArray) || (inPatch && patchValue is not JsonArray))
            {
                continue;
            }
            var liveList = current as JsonArray;
            var patchList = patchValue as JsonArray;
            if (liveList is null && patchList is null)
            {
                continue;
            }
            ValidateOrder(order, patchList, field.MergeKey);
            List<JsonNode?> live = liveList is null ? [] : [.. liveList];
            var merged = patchList is null ? liveList! : MergeList(liveList ?? [], patchList, field);
            original[name] = ToArray(Ordered(Detach(merged), [.. order], live, field.MergeKey));
            done.Add(name);
        }
        return done;
    }

    // The patch list must name its elements in the directive's relative order, and only elements it names.
    private static void ValidateOrder(JsonArray order, JsonArray? patchList, string? mergeKey)
    {
        foreach (var item in order)
        {
            bool ok = mergeKey is null
                ? item is JsonValue
                : item is JsonObject entry && entry.ContainsKey(mergeKey);
            if (!ok)
            {
                throw new PatchException(BadSetElementOrder);
            }
        }
        if (patchList is null || order.Count == 0)
        {
            return;
        }
        var named = patchList.Where(p => p is not JsonObject o || !o.ContainsKey(PatchDirective)).ToList();
        int patchIndex = 0;
        for (int orderIndex = 0; patchIndex < named.Count && orderIndex < order.Count; orderIndex++)
        {
            bool same = mergeKey is null
                ? JsonEquality.Equal(named[patchIndex], order[orderIndex])
                : named[patchIndex] is JsonObject element
                    && JsonEquality.Equal(MergeKeyOf(element, mergeKey), order[orderIndex]!.AsObject()[mergeKey]);
            if (same)
            {
                patchIndex++;
            }
        }
        if (patchIndex < named.Count)
        {
            throw new PatchException(
                $"The order in patch list:\n{Text(patchList)}\n doesn't match $setElementOrder list:\n{Text(order)}");
        }
    }

    // Elements named in `order` come in that order; the others keep the order they had and are slotted in by
    // their position in the live list: before the next named element that comes after them there.
    private static List<JsonNode?> Ordered(List<JsonNode?> merged, List<JsonNode?> order, List<JsonNode?> live, string? mergeKey)
    {
        int OrderIndex(JsonNode? item) => IndexOf(order, item, mergeKey);
        var named = merged.Where(m => OrderIndex(m) >= 0).OrderBy(OrderIndex).ToList();
        var serverOnly = merged.Where(m => OrderIndex(m) < 0).ToList();

        var result = new List<JsonNode?>(merged.Count);
        int s = 0, n = 0;
        while (s < serverOnly.Count || n < named.Count)
        {
            bool takeServerOnly = n >= named.Count;
            if (!takeServerOnly && s < serverOnly.Count)
            {
                int liveS = IndexOf(live, serverOnly[s], mergeKey);
                int liveN = IndexOf(live, named[n], mergeKey);
                takeServerOnly = liveS >= 0 && liveN >= 0 && liveS < liveN;
            }
            result.Add(takeServerOnly ? serverOnly[s++] : named[n++]);
        }
        return result;
    }

    private static int IndexOf(List<JsonNode?> list, JsonNode? item, string? mergeKey)
    {
        if (mergeKey is null)
        {
            return list.FindIndex(l => JsonEquality.Equal(l, item));
        }
        if (item is not JsonObject element || !element.TryGetPropertyValue(mergeKey, out var key))
        {
            return -1;
        }
        return list.FindIndex(l => HasKey(l, mergeKey, key));
    }

    private static void RetainKeys(JsonObject original, JsonObject patch)
    {
        if (!patch.TryGetPropertyValue(RetainKeysDirective, out var value))
        {
            return;
        }
        if (value is not JsonArray list || list.Any(k => AsString(k) is null))
        {
            throw new PatchException(BadRetainKeys);
        }
        var retained = list.Select(k => AsString(k)!).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, patchValue) in patch)
        {
            if (patchValue is not null && !IsDirective(name) && !retained.Contains(name))
            {
                throw new PatchException(RetainKeysMismatch);
            }
        }
        foreach (var name in original.Select(p => p.Key).Where(k => !retained.Contains(k)).ToList())
        {
            original.Remove(name);
        }
    }

    private static void DeleteFromPrimitiveLists(JsonObject original, JsonObject patch)
    {
        foreach (var (directiveName, value) in patch)
        {
            if (!directiveName.StartsWith(DeleteFromPrimitiveListPrefix, StringComparison.Ordinal))
            {
                continue;
            }
            string name = directiveName[DeleteFromPrimitiveListPrefix.Length..];
            if (name.Length == 0 || value is not JsonArray toDelete)
            {
                throw new PatchException(BadPrimitiveList);
            }
            if (original[name] is JsonArray list)
            {
                var kept = Detach(list).Where(item => !toDelete.Any(d => JsonEquality.Equal(d, item)));
                original[name] = ToArray(kept);
            }
        }
    }

    // The elements, freed from their array so they can move to another.
    private static List<JsonNode?> Detach(JsonArray array)
    {
        var items = array.ToList();
        array.Clear();
        return items;
    }

    private static JsonArray ToArray(IEnumerable<JsonNode?> items) => [.. items];

    private static bool ElementsAreObjects(List<JsonNode?> live, JsonArray patch)
    {
        bool? objects = null;
        foreach (var item in live.Concat(patch))
        {
            if (item is JsonArray)
            {
                throw new PatchException("lists of lists are not supported");
            }
            bool isObject = item is JsonObject;
            if (objects is bool seen && seen != isObject)
            {
                throw new PatchException($"list element types are not identical: {Text(patch)}");
            }
            objects = isObject;
        }
        return objects ?? false;
    }

    private static JsonNode? MergeKeyOf(JsonObject element, string mergeKey) =>
        element.TryGetPropertyValue(mergeKey, out var key)
            ? key
            : throw new PatchException($"map: {Text(element)} does not contain declared merge key: {mergeKey}");

    private static bool HasKey(JsonNode? element, string mergeKey, JsonNode? key) =>
        element is JsonObject o && o.TryGetPropertyValue(mergeKey, out var value) && JsonEquality.Equal(value, key);

    private static bool IsDirective(string name) =>
        name is PatchDirective or RetainKeysDirective
        || name.StartsWith(SetElementOrderPrefix, StringComparison.Ordinal)
        || name.StartsWith(DeleteFromPrimitiveListPrefix, StringComparison.Ordinal);

    private static string? AsString(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    private static string Text(JsonNode? node) => node?.ToJsonString() ?? "null";
}
