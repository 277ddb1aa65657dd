using EdgeKube.Master.Api.Patching;
using static EdgeKube.Master.Tests.Api.Patching.PatchJson;

namespace EdgeKube.Master.Tests.Api.Patching;

public class JsonPatchTests
{
    // RFC 6902 appendix A, the examples that succeed.
    [Theory]
    [InlineData( // A.1 adding an object member
        """{"foo":"bar"}""",
        """[{"op":"add","path":"/baz","value":"qux"}]""",
        """{"baz":"qux","foo":"bar"}""")]
    [InlineData( // A.2 adding an array element
        """{"foo":["bar","baz"]}""",
        """[{"op":"add","path":"/foo/1","value":"qux"}]""",
        """{"foo":["bar","qux","baz"]}""")]
    [InlineData( // A.3 removing an object member
        """{"baz":"qux","foo":"bar"}""",
        """[{"op":"remove","path":"/baz"}]""",
        """{"foo":"bar"}""")]
    [InlineData( // A.4 removing an array element
        """{"foo":["bar","qux","baz"]}""",
        """[{"op":"remove","path":"/foo/1"}]""",
        """{"foo":["bar","baz"]}""")]
    [InlineData( // A.5 replacing a value
        """{"baz":"qux","foo":"bar"}""",
        """[{"op":"replace","path":"/baz","value":"boo"}]""",
        """{"baz":"boo","foo":"bar"}""")]
    [InlineData( // A.6 moving a value
        """{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}""",
        """[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]""",
        """{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}""")]
    [InlineData( // A.7 moving an array element
        """{"foo":["all","grass","cows","eat"]}""",
        """[{"op":"move","from":"/foo/1","path":"/foo/3"}]""",
        """{"foo":["all","cows","eat","grass"]}""")]
    [InlineData( // A.8 testing a value: success
        """{"baz":"qux","foo":["a",2,"c"]}""",
        """[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]""",
        """{"baz":"qux","foo":["a",2,"c"]}""")]
    [InlineData( // A.10 adding a nested member object
        """{"foo":"bar"}""",
        """[{"op":"add","path":"/child","value":{"grandchild":{}}}]""",
        """{"foo":"bar","child":{"grandchild":{}}}""")]
    [InlineData( // A.11 ignoring unrecognized elements
        """{"foo":"bar"}""",
        """[{"op":"add","path":"/baz","value":"qux","xyz":123}]""",
        """{"foo":"bar","baz":"qux"}""")]
    [InlineData( // A.14 ~ escape ordering
        """{"/":9,"~1":10}""",
        """[{"op":"test","path":"/~01","value":10}]""",
        """{"/":9,"~1":10}""")]
    [InlineData( // A.16 adding an array value
        """{"foo":["bar"]}""",
        """[{"op":"add","path":"/foo/-","value":["abc","def"]}]""",
        """{"foo":["bar",["abc","def"]]}""")]
    public void Rfc6902_examples(string target, string patch, string expected) =>
        AssertJson(expected, Json(Obj(target), patch));

    [Theory]
    [InlineData( // copy, and the copy is independent of its source
        """{"a":{"b":1}}""",
        """[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]""",
        """{"a":{"b":1},"c":{"b":2}}""")]
    [InlineData( // add replaces an existing member
        """{"a":1}""",
        """[{"op":"add","path":"/a","value":{"x":null}}]""",
        """{"a":{"x":null}}""")]
    [InlineData( // test on a null value and on a whole object, numbers by value
        """{"a":null,"b":{"x":1,"y":[1,2]}}""",
        """[{"op":"test","path":"/a","value":null},{"op":"test","path":"/b","value":{"y":[1.0,2],"x":1e0}}]""",
        """{"a":null,"b":{"x":1,"y":[1,2]}}""")]
    [InlineData( // the whole document replaced
        """{"a":1}""",
        """[{"op":"replace","path":"","value":{"b":2}}]""",
        """{"b":2}""")]
    [InlineData( // moving to the same place changes nothing
        """{"a":[1,2]}""",
        """[{"op":"move","from":"/a/0","path":"/a/0"}]""",
        """{"a":[1,2]}""")]
    [InlineData( // operations see the results of those before them
        """{"items":[]}""",
        """[{"op":"add","path":"/items/0","value":"x"},{"op":"add","path":"/items/1","value":"y"},{"op":"remove","path":"/items/0"}]""",
        """{"items":["y"]}""")]
    [InlineData( // a key with a slash and a tilde
        """{"metadata":{"annotations":{"example.com/a~b":"1"}}}""",
        """[{"op":"remove","path":"/metadata/annotations/example.com~1a~0b"}]""",
        """{"metadata":{"annotations":{}}}""")]
    public void Other_operations(string target, string patch, string expected) =>
        AssertJson(expected, Json(Obj(target), patch));

    [Theory]
    [InlineData("""{"baz":"qux"}""", """[{"op":"test","path":"/baz","value":"bar"}]""", "testing value /baz failed")] // A.9
    [InlineData("""{"foo":"bar"}""", """[{"op":"add","path":"/baz/bat","value":"qux"}]""", "add operation does not apply")] // A.12
    [InlineData("""{"/":9,"~1":10}""", """[{"op":"test","path":"/~01","value":"10"}]""", "testing value /~01 failed")] // A.15
    [InlineData("""{"a":1}""", """[{"op":"test","path":"/b","value":null}]""", "testing value /b failed")]
    [InlineData("""{"a":1}""", """[{"op":"remove","path":"/b"}]""", "Unable to remove nonexistent key: b")]
    [InlineData("""{"a":1}""", """[{"op":"replace","path":"/b","value":2}]""", "replace operation does not apply")]
    [InlineData("""{"a":[1]}""", """[{"op":"replace","path":"/a/1","value":2}]""", "invalid index")]
    [InlineData("""{"a":[1]}""", """[{"op":"add","path":"/a/2","value":2}]""", "invalid index")]
    [InlineData("""{"a":[1]}""", """[{"op":"add","path":"/a/01","value":2}]""", "invalid index")]
    [InlineData("""{"a":[1]}""", """[{"op":"remove","path":"/a/-"}]""", "invalid index")]
    [InlineData("""{"a":[1]}""", """[{"op":"add","path":"/a/x/y","value":2}]""", "add operation does not apply")]
    [InlineData("""{"a":1}""", """[{"op":"add","path":"a","value":2}]""", "invalid JSON pointer")]
    [InlineData("""{"a":1}""", """[{"op":"add","path":"/a~2","value":2}]""", "invalid JSON pointer")]
    [InlineData("""{"a":1}""", """[{"op":"move","from":"/b","path":"/c"}]""", "move operation does not apply")]
    [InlineData("""{"a":{"b":1}}""", """[{"op":"move","from":"/a","path":"/a/b/c"}]""", "is a child of")]
    [InlineData("""{"a":1}""", """[{"op":"copy","from":"/b","path":"/c"}]""", "copy operation does not apply")]
    [InlineData("""{"a":1}""", """[{"op":"remove","path":""}]""", "whole document")]
    [InlineData("""{"a":1}""", """[{"op":"replace","path":"","value":[1]}]""", "not a JSON object")]
    [InlineData("""{"a":1}""", """[{"op":"add","path":"/b"}]""", "has no \"value\"")]
    [InlineData("""{"a":1}""", """[{"op":"add","value":1}]""", "has no string \"path\"")]
    [InlineData("""{"a":1}""", """[{"path":"/a"}]""", "has no string \"op\"")]
    [InlineData("""{"a":1}""", """[{"op":"merge","path":"/a","value":1}]""", "Unexpected kind: merge")]
    [InlineData("""{"a":1}""", """["add"]""", "not a JSON object")]
    public void Failures(string target, string patch, string message)
    {
        var targetObject = Obj(target);
        var operations = Arr(patch);
        var error = Fails(targetObject, operations, () => Patches.ApplyJsonPatch(targetObject, operations));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failing_operation_leaves_nothing_of_the_earlier_ones()
    {
        var target = Obj("""{"spec":{"replicas":2}}""");
        var operations = Arr("""[{"op":"replace","path":"/spec/replicas","value":3},{"op":"test","path":"/spec/replicas","value":4}]""");
        Fails(target, operations, () => Patches.ApplyJsonPatch(target, operations));
        AssertJson("""{"spec":{"replicas":2}}""", target);
    }

    [Fact]
    public void Kubectl_rollout_undo_replaces_template_and_annotations()
    {
        var deployment = Obj("""
            {"apiVersion":"apps/v1","kind":"Deployment",
             "metadata":{"name":"web","annotations":{"deployment.kubernetes.io/revision":"3"}},
             "spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"x"}},
                     "spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}}}
            """);
        var result = Json(deployment, """
            [{"op":"replace","path":"/spec/template","value":{"metadata":{"creationTimestamp":null,"labels":{"app":"web"}},
                                                               "spec":{"containers":[{"name":"app","image":"nginx:1.25"}]}}},
             {"op":"replace","path":"/metadata/annotations","value":{"deployment.kubernetes.io/revision":"3"}}]
            """);
        AssertJson("""
            {"apiVersion":"apps/v1","kind":"Deployment",
             "metadata":{"name":"web","annotations":{"deployment.kubernetes.io/revision":"3"}},
             "spec":{"replicas":2,"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"web"}},
                     "spec":{"containers":[{"name":"app","image":"nginx:1.25"}]}}}}
            """, result);
    }
}
