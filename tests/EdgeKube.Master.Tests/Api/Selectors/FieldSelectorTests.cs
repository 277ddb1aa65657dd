using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;

namespace EdgeKube.Master.Tests.Api.Selectors;

public class FieldSelectorTests
{
    private static readonly JsonObject Pod = JsonNode.Parse("""
        {"metadata": {"name": "web", "namespace": "default"},
         "spec": {"nodeName": "pi-1", "hostNetwork": true, "restartPolicy": "Always"},
         "status": {"phase": "Running", "podIP": "10.42.0.7"}}
        """)!.AsObject();

    private static readonly JsonObject Event = JsonNode.Parse("""
        {"metadata": {"name": "web.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u-1"},
         "type": "Warning", "reason": "BackOff", "source": {"component": "kubelet", "host": "pi-1"}}
        """)!.AsObject();

    private static readonly JsonObject Node = JsonNode.Parse("""{"metadata": {"name": "pi-1"}, "spec": {}}""")!.AsObject();

    [Theory]
    [InlineData("metadata.name=web", true)]
    [InlineData("metadata.name==web", true)]
    [InlineData("metadata.name!=web", false)]
    [InlineData("metadata.namespace=default,spec.nodeName=pi-1", true)]
    [InlineData("metadata.namespace=default,spec.nodeName=pi-2", false)]
    [InlineData("spec.nodeName=", false)]
    [InlineData("spec.nodeName!=", true)]
    [InlineData("spec.schedulerName=", true)]
    [InlineData("spec.schedulerName!=default-scheduler", true)]
    [InlineData("status.phase=Running", true)]
    [InlineData("status.phase!=Running,status.phase!=Pending", false)]
    [InlineData("spec.hostNetwork=true", true)]
    [InlineData("spec.host=pi-1", true)]
    [InlineData("status.podIP=10.42.0.7", true)]
    public void Pod_fields(string selector, bool expected) =>
        Assert.Equal(expected, FieldSelector.Parse(selector).Matches(Pod));

    [Theory]
    [InlineData("involvedObject.kind=Pod,involvedObject.name=web,involvedObject.namespace=default", true)]
    [InlineData("involvedObject.uid=u-1", true)]
    [InlineData("involvedObject.uid=u-2", false)]
    [InlineData("type=Warning", true)]
    [InlineData("type!=Normal", true)]
    [InlineData("reason=BackOff", true)]
    [InlineData("source=kubelet", true)]
    [InlineData("involvedObject.fieldPath=", true)]
    public void Event_fields(string selector, bool expected) =>
        Assert.Equal(expected, FieldSelector.Parse(selector).Matches(Event));

    [Theory]
    [InlineData("spec.unschedulable=false", true)]
    [InlineData("spec.unschedulable!=true", true)]
    [InlineData("spec.unschedulable=true", false)]
    public void Missing_booleans_read_false(string selector, bool expected) =>
        Assert.Equal(expected, FieldSelector.Parse(selector).Matches(Node));

    [Fact]
    public void Cordoned_node()
    {
        var cordoned = JsonNode.Parse("""{"metadata": {"name": "pi-2"}, "spec": {"unschedulable": true}}""")!.AsObject();

        Assert.True(FieldSelector.Parse("spec.unschedulable=true").Matches(cordoned));
        Assert.False(FieldSelector.Parse("spec.unschedulable=false").Matches(cordoned));
    }

    [Fact]
    public void Numbers_compare_in_decimal()
    {
        var rc = JsonNode.Parse("""{"status": {"replicas": 3}}""")!.AsObject();

        Assert.True(FieldSelector.Parse("status.replicas=3").Matches(rc));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(",")]
    public void Blank_selects_everything(string? text)
    {
        var selector = FieldSelector.Parse(text);

        Assert.True(selector.IsEmpty);
        Assert.True(selector.Matches(Pod));
    }

    [Fact]
    public void Escaped_values()
    {
        var obj = JsonNode.Parse("""{"metadata": {"name": "a,b=c\\d"}}""")!.AsObject();
        var selector = FieldSelector.Parse(@"metadata.name=a\,b\=c\\d");

        Assert.True(selector.Matches(obj));
        Assert.Equal(@"metadata.name=a\,b\=c\\d", selector.ToString());
    }

    [Fact]
    public void Terms_are_sorted_and_trailing_commas_ignored()
    {
        var selector = FieldSelector.Parse("status.phase!=Failed,metadata.name=web,");

        Assert.Equal("metadata.name=web,status.phase!=Failed", selector.ToString());
        Assert.Equal(2, selector.Requirements.Count);
    }

    [Fact]
    public void Exact_match_for_index_lookups()
    {
        var selector = FieldSelector.Parse("spec.nodeName=pi-1,status.phase!=Succeeded");

        Assert.True(selector.TryGetExactMatch("spec.nodeName", out var node));
        Assert.Equal("pi-1", node);
        Assert.False(selector.TryGetExactMatch("status.phase", out _));
    }

    [Theory]
    [InlineData("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'")]
    [InlineData("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'")]
    [InlineData("metadata.name=a=b", "invalid field selector: unescaped character in value: 61")]
    [InlineData(@"metadata.name=a\b", @"invalid field selector: invalid escape sequence: \b")]
    [InlineData(@"metadata.name=a\", @"invalid field selector: invalid escape sequence: \")]
    public void Bad_input(string selector, string message) =>
        Assert.Equal(message, Assert.Throws<SelectorException>(() => FieldSelector.Parse(selector)).Message);

    [Fact]
    public void Value_of_reads_dotted_paths()
    {
        Assert.Equal("pi-1", FieldSelector.ValueOf(Pod, "spec.nodeName"));
        Assert.Equal("true", FieldSelector.ValueOf(Pod, "spec.hostNetwork"));
        Assert.Equal("", FieldSelector.ValueOf(Pod, "spec.nothing.deeper"));
        Assert.Equal("kubelet", FieldSelector.ValueOf(Event, "source"));
        Assert.Equal("pi-1", FieldSelector.ValueOf(Event, "source.host"));
    }
}
