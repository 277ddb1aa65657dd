using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Patching;

namespace EdgeKube.Master.Tests.Api.Patching;

/// <summary>Parsing and comparing JSON in patch tests, and applying patches while checking that no input changes.</summary>
internal static class PatchJson
{
    public static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    public static JsonArray Arr(string json) => JsonNode.Parse(json)!.AsArray();

    /// <summary>Equal as JSON: member order ignored, array order significant.</summary>
    public static void AssertJson(string expected, JsonNode? actual)
    {
        var expectedNode = JsonNode.Parse(expected);
        Assert.True(JsonNode.DeepEquals(expectedNode, actual),
            $"expected {expectedNode?.ToJsonString()}\n     got {actual?.ToJsonString()}");
    }

    public static JsonObject Strategic(JsonObject target, string patch, string apiVersion, string kind)
    {
        var patchObject = Obj(patch);
        return Unchanged(target, patchObject, () => Patches.ApplyStrategicMergePatch(target, patchObject, apiVersion, kind));
    }

    public static JsonObject Merge(JsonObject target, string patch)
    {
        var patchNode = JsonNode.Parse(patch)!;
        return Unchanged(target, patchNode, () => Patches.ApplyMergePatch(target, patchNode));
    }

    public static JsonObject Json(JsonObject target, string patch)
    {
        var operations = Arr(patch);
        return Unchanged(target, operations, () => Patches.ApplyJsonPatch(target, operations));
    }

    /// <summary>Runs a patch that must fail, and checks that it failed without touching its inputs.</summary>
    public static PatchException Fails(JsonObject target, JsonNode patch, Func<JsonObject> apply)
    {
        PatchException? error = null;
        Unchanged(target, patch, () =>
        {
            error = Assert.Throws<PatchException>(() => apply());
            return target;
        }, expectNewObject: false);
        return error!;
    }

    private static JsonObject Unchanged(JsonObject target, JsonNode patch, Func<JsonObject> apply, bool expectNewObject = true)
    {
        string targetBefore = target.ToJsonString();
        string patchBefore = patch.ToJsonString();
        var result = apply();
        Assert.Equal(targetBefore, target.ToJsonString());
        Assert.Equal(patchBefore, patch.ToJsonString());
        if (expectNewObject)
        {
            Assert.NotSame(target, result);
            Assert.Null(result.Parent);
        }
        return result;
    }
}
