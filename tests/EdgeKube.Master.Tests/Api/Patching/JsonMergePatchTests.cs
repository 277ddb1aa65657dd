using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Patching;
using static EdgeKube.Master.Tests.Api.Patching.PatchJson;

namespace EdgeKube.Master.Tests.Api.Patching;

public class JsonMergePatchTests
{
    // RFC 7386 appendix A, the cases whose target and result are objects.
    [Theory]
    [InlineData("""{"a":"b"}""", """{"a":"c"}""", """{"a":"c"}""")]
    [InlineData("""{"a":"b"}""", """{"b":"c"}""", """{"a":"b","b":"c"}""")]
    [InlineData("""{"a":"b"}""", """{"a":null}""", """{}""")]
    [InlineData("""{"a":"b","b":"c"}""", """{"a":null}""", """{"b":"c"}""")]
    [InlineData("""{"a":["b"]}""", """{"a":"c"}""", """{"a":"c"}""")]
    [InlineData("""{"a":"c"}""", """{"a":["b"]}""", """{"a":["b"]}""")]
    [InlineData("""{"a":{"b":"c"}}""", """{"a":{"b":"d","c":null}}""", """{"a":{"b":"d"}}""")]
    [InlineData("""{"a":[{"b":"c"}]}""", """{"a":[1]}""", """{"a":[1]}""")]
    [InlineData("""{"e":null}""", """{"a":1}""", """{"e":null,"a":1}""")]
    [InlineData("""{}""", """{"a":{"bb":{"ccc":null}}}""", """{"a":{"bb":{}}}""")]
    public void Rfc7386_examples(string target, string patch, string expected) =>
        AssertJson(expected, Merge(Obj(target), patch));

    // The RFC makes a non-object patch the whole result, which an API object cannot be.
    [Theory]
    [InlineData("""["c"]""")]
    [InlineData("\"bar\"")]
    [InlineData("1")]
    public void Patch_that_is_not_an_object_is_refused(string patch)
    {
        var target = Obj("""{"a":"foo"}""");
        var patchNode = JsonNode.Parse(patch)!;
        Fails(target, patchNode, () => Patches.ApplyMergePatch(target, patchNode));
    }

    [Fact]
    public void Lists_are_replaced_with_their_nulls_kept()
    {
        var result = Merge(Obj("""{"spec":{"args":["a","b"]}}"""), """{"spec":{"args":[null,"c"]}}""");
        AssertJson("""{"spec":{"args":[null,"c"]}}""", result);
    }

    [Fact]
    public void Kubectl_label_add_and_remove()
    {
        var pod = Obj("""{"metadata":{"name":"web","labels":{"app":"web","a":"1"}},"spec":{"nodeName":"pi-1"}}""");

        var added = Merge(pod, """{"metadata":{"labels":{"tier":"front"}}}""");
        AssertJson("""{"metadata":{"name":"web","labels":{"app":"web","a":"1","tier":"front"}},"spec":{"nodeName":"pi-1"}}""", added);

        var removed = Merge(pod, """{"metadata":{"labels":{"a":null}}}""");
        AssertJson("""{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"nodeName":"pi-1"}}""", removed);
    }

    [Fact]
    public void Kubectl_scale_on_the_scale_subresource()
    {
        var scale = Obj("""{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":2},"status":{"replicas":2}}""");
        var result = Merge(scale, """{"spec":{"replicas":5}}""");
        Assert.Equal(5, result["spec"]!["replicas"]!.GetValue<int>());
        Assert.Equal(2, result["status"]!["replicas"]!.GetValue<int>());
    }
}
