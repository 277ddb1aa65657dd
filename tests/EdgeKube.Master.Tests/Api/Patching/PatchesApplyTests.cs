using EdgeKube.Master.Api.Patching;
using static EdgeKube.Master.Tests.Api.Patching.PatchJson;

namespace EdgeKube.Master.Tests.Api.Patching;

public class PatchesApplyTests
{
    private const string Pod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},
         "spec":{"containers":[{"name":"app","image":"nginx:1.25"},{"name":"log","image":"fluent-bit:3"}]}}
        """;

    [Theory]
    [InlineData("application/strategic-merge-patch+json")]
    [InlineData("application/strategic-merge-patch+json; charset=utf-8")]
    [InlineData("Application/Strategic-Merge-Patch+JSON")]
    public void Strategic_merge_patch_merges_lists_by_key(string contentType)
    {
        var pod = Obj(Pod);
        var result = Patches.Apply(contentType, pod, """{"spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}""", "v1", "Pod");
        AssertJson("""[{"name":"app","image":"nginx:1.27"},{"name":"log","image":"fluent-bit:3"}]""", result["spec"]!["containers"]);
        AssertJson(Pod, pod);
    }

    [Fact]
    public void Merge_patch_replaces_lists()
    {
        var result = Patches.Apply("application/merge-patch+json", Obj(Pod),
            """{"metadata":{"labels":{"app":null,"v":"2"}},"spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}""", "v1", "Pod");
        AssertJson("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"v":"2"}},
             "spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}
            """, result);
    }

    [Fact]
    public void Json_patch_applies_operations()
    {
        var result = Patches.Apply("application/json-patch+json", Obj(Pod),
            """[{"op":"replace","path":"/spec/containers/1/image","value":"fluent-bit:4"},{"op":"remove","path":"/metadata/labels"}]""", "v1", "Pod");
        AssertJson("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
             "spec":{"containers":[{"name":"app","image":"nginx:1.25"},{"name":"log","image":"fluent-bit:4"}]}}
            """, result);
    }

    [Theory]
    [InlineData("application/apply-patch+yaml")]
    [InlineData("application/json")]
    [InlineData("")]
    public void Other_media_types_are_refused_as_unsupported(string contentType)
    {
        var error = Assert.Throws<PatchException>(() => Patches.Apply(contentType, Obj(Pod), "{}", "v1", "Pod"));
        Assert.StartsWith("the body of the request was in an unknown format - accepted media types include: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("application/strategic-merge-patch+json", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("application/json-patch+json", """{"op":"add"}""")]
    [InlineData("application/json-patch+json", "not json")]
    [InlineData("application/merge-patch+json", "null")]
    [InlineData("application/merge-patch+json", """{"a":""")]
    [InlineData("application/strategic-merge-patch+json", "[]")]
    [InlineData("application/strategic-merge-patch+json", "")]
    // RFC 6902 A.13: a duplicate member makes the document invalid.
    [InlineData("application/json-patch+json", """[{"op":"add","path":"/baz","value":"qux","op":"remove"}]""")]
    [InlineData("application/strategic-merge-patch+json", """{"metadata":{"labels":{"a":"1","a":"2"}}}""")]
    public void Bodies_of_the_wrong_shape_are_refused(string contentType, string body)
    {
        var pod = Obj(Pod);
        Assert.Throws<PatchException>(() => Patches.Apply(contentType, pod, body, "v1", "Pod"));
        AssertJson(Pod, pod);
    }
}
