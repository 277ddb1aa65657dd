using System.Text;
using MQTTnet;
using MQTTnet.Protocol;

namespace EdgeKube.Broker.Tests;

/// <summary>The pure part of the embedded broker's per-node retained store: which node a topic or filter concerns.</summary>
public sealed class NodeRetainedStoreTests
{
    private readonly NodeRetainedStore _store = new("edgekube/v1");

    [Theory]
    [InlineData("edgekube/v1/nodes/board-1/spec", "board-1")]
    [InlineData("edgekube/v1/nodes/board-1/pods/default/web/status", "board-1")]
    [InlineData("edgekube/v1/nodes/board-1", "board-1")]
    [InlineData("edgekube/v1/nodes/", null)]
    [InlineData("edgekube/v1/nodes", null)]
    [InlineData("edgekube/v1/cluster/routes", null)]
    [InlineData("edgekube/v2/nodes/board-1/spec", null)]
    [InlineData("edgekube/v1/nodesx/board-1/spec", null)]
    [InlineData("other", null)]
    public void A_topic_belongs_to_the_node_in_its_node_level(string topic, string? node) => Assert.Equal(node, _store.NodeOf(topic));

    [Theory]
    [InlineData("edgekube/v1/nodes/board-1/pods/+/+", FilterScope.OneNode, "board-1")]
    [InlineData("edgekube/v1/nodes/board-1/#", FilterScope.OneNode, "board-1")]
    [InlineData("edgekube/v1/nodes/+/status", FilterScope.AllNodes, null)]
    [InlineData("edgekube/v1/nodes/#", FilterScope.AllNodes, null)]
    [InlineData("edgekube/+/nodes/+/status", FilterScope.AllNodes, null)]
    [InlineData("edgekube/+/nodes/board-1/status", FilterScope.OneNode, "board-1")]
    [InlineData("#", FilterScope.AllNodes, null)]
    [InlineData("edgekube/#", FilterScope.AllNodes, null)]
    [InlineData("edgekube/v1/cluster/#", FilterScope.None, null)]
    [InlineData("edgekube/v1/nodes", FilterScope.None, null)]
    [InlineData("edgekube/v1/+", FilterScope.None, null)]
    public void A_filter_looks_at_one_node_all_nodes_or_none(string filter, FilterScope scope, string? node)
    {
        Assert.Equal(scope, _store.ScopeOf(filter, out var pinned));
        Assert.Equal(node, pinned);
    }

    [Fact]
    public void Replay_hands_on_the_latest_of_each_topic_flagged_retained_and_never_above_the_subscriptions_qos()
    {
        Assert.True(_store.Keep(Message("edgekube/v1/nodes/a/spec", "old")));
        Assert.True(_store.Keep(Message("edgekube/v1/nodes/a/spec", "new")));
        Assert.True(_store.Keep(Message("edgekube/v1/nodes/a/pods/ns/p", "pod")));
        Assert.True(_store.Keep(Message("edgekube/v1/nodes/a/pods/ns/p", "")));
        Assert.True(_store.Keep(Message("edgekube/v1/nodes/b/spec", "b")));
        Assert.False(_store.Keep(Message("edgekube/v1/cluster/routes", "r")));
        Assert.Equal(2, _store.Count);

        var got = new List<MqttApplicationMessage>();
        Assert.Equal(1, _store.Replay("edgekube/v1/nodes/a/#", MqttQualityOfServiceLevel.AtMostOnce, got.Add));
        var only = Assert.Single(got);
        Assert.Equal(("edgekube/v1/nodes/a/spec", "new", true, MqttQualityOfServiceLevel.AtMostOnce),
            (only.Topic, Encoding.UTF8.GetString(only.Payload), only.Retain, only.QualityOfServiceLevel));

        got.Clear();
        Assert.Equal(2, _store.Replay("edgekube/v1/nodes/+/spec", MqttQualityOfServiceLevel.ExactlyOnce, got.Add));
        Assert.All(got, m => Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, m.QualityOfServiceLevel));
        Assert.Equal(0, _store.Replay("edgekube/v1/cluster/#", MqttQualityOfServiceLevel.AtLeastOnce, got.Add));
    }

    [Fact]
    public void The_store_owns_its_copy_of_the_payload()
    {
        var bytes = Encoding.UTF8.GetBytes("spec");
        _store.Keep(new MqttApplicationMessageBuilder().WithTopic("edgekube/v1/nodes/a/spec").WithPayload(bytes).WithRetainFlag().Build());
        bytes[0] = (byte)'X';
        var got = new List<MqttApplicationMessage>();
        _store.Replay("edgekube/v1/nodes/a/spec", MqttQualityOfServiceLevel.AtLeastOnce, got.Add);
        Assert.Equal("spec", Encoding.UTF8.GetString(Assert.Single(got).Payload));
    }

    private static MqttApplicationMessage Message(string topic, string payload) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build();
}
