using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Patching;

/// <summary>RFC 7386 JSON merge patch: objects merge member by member, null removes a member, anything else replaces.</summary>
internal static class JsonMergePatch
{
    public static JsonObject Apply(JsonObject target, JsonObject patch) => MergeInto(target.DeepClone().AsObject(), patch);

    // target is our own copy and is changed in place; the patch is only read, so whatever is taken from it is cloned.
    private static JsonObject MergeInto(JsonObject target, JsonObject patch)
    {
        foreach (var (name, value) in patch)
        {
            switch (value)
            {
                case null:
                    target.Remove(name);
                    break;
                case JsonObject patchObject when target[name] is JsonObject targetObject:
                    MergeInto(targetObject, patchObject);
                    break;
                case JsonObject patchObject:
                    // Merging into an empty object drops the nulls nested in the new value, as the RFC's recursion does.
                    target[name] = MergeInto([], patchObject);
                    break;
                default:
                    target[name] = value.DeepClone();
                    break;
            }
        }
        return target;
    }
}
