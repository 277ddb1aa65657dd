using System.Buffers;
using System.Text;
using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace EdgeKube.Broker.Tests;

/// <summary>The pure part of the embedded broker's node-topic delivery: who gets a publish, and how.</summary>
public sealed class NodeSubscriptionsTests
{
    private const string P = "edgekube/v1";
    private readonly NodeSubscriptions<string> _subs = new(new NodeRetainedStore(P));
    private readonly object _masterSession = new();
    private readonly object _board1Session = new();

    private static MqttTopicFilter Filter(string topic, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, bool noLocal = false, bool retainAsPublished = false) =>
        new() { Topic = topic, QualityOfServiceLevel = qos, NoLocal = noLocal, RetainAsPublished = retainAsPublished };

    private static MqttApplicationMessage Message(string topic, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, bool retain = true) =>
        new() { Topic = topic, Payload = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes("x")), QualityOfServiceLevel = qos, Retain = retain };

    private (string Client, MqttQualityOfServiceLevel Qos, bool Retain)[] Deliveries(string node, MqttApplicationMessage message, string? sender = null) =>
        [.. _subs.Match(node, message, sender).Select(d => (d.ClientId, d.Message.QualityOfServiceLevel, d.Message.Retain)).OrderBy(d => d.ClientId, StringComparer.Ordinal)];

    private void AssertIndexed(string[] own, string[] all)
    {
        var (node, allNodes) = _subs.Indexed("board-1");
        Assert.Equal(own, node);
        Assert.Equal(all, allNodes);
    }

    [Fact]
    public void A_publish_goes_to_the_nodes_own_subscribers_and_the_wildcard_ones_only()
    {
        Assert.True(_subs.Add("edgekube-master", _masterSession, "m", Filter($"{P}/nodes/+/status"), out _));
        Assert.True(_subs.Add("edgekube-agent-board-1", _board1Session, "b1", Filter($"{P}/nodes/board-1/#"), out _));
        Assert.True(_subs.Add("edgekube-agent-board-2", new object(), "b2", Filter($"{P}/nodes/board-2/#"), out _));
        Assert.False(_subs.Add("edgekube-agent-board-1", _board1Session, "b1", Filter($"{P}/cluster/#"), out _));

        Assert.Equal(
            [("edgekube-agent-board-1", MqttQualityOfServiceLevel.AtLeastOnce, false), ("edgekube-master", MqttQualityOfServiceLevel.AtLeastOnce, false)],
            Deliveries("board-1", Message($"{P}/nodes/board-1/status")));
        Assert.Equal([("edgekube-agent-board-1", MqttQualityOfServiceLevel.AtLeastOnce, false)], Deliveries("board-1", Message($"{P}/nodes/board-1/spec")));
        Assert.Empty(Deliveries("board-3", Message($"{P}/nodes/board-3/spec")));
    }

    [Fact]
    public void Overlapping_filters_give_one_copy_at_the_highest_qos_granted_but_never_above_the_messages()
    {
        _subs.Add("m", _masterSession, "m", Filter($"{P}/nodes/+/pods/+/+/status", MqttQualityOfServiceLevel.AtMostOnce), out _);
        _subs.Add("m", _masterSession, "m", Filter($"{P}/nodes/board-1/#", MqttQualityOfServiceLevel.ExactlyOnce), out _);
        var status = $"{P}/nodes/board-1/pods/default/web/status";
        Assert.Equal([("m", MqttQualityOfServiceLevel.AtLeastOnce, false)], Deliveries("board-1", Message(status)));
        Assert.Equal([("m", MqttQualityOfServiceLevel.AtMostOnce, false)], Deliveries("board-1", Message(status, MqttQualityOfServiceLevel.AtMostOnce)));
        Assert.Equal([("m", MqttQualityOfServiceLevel.AtMostOnce, false)], Deliveries("board-2", Message($"{P}/nodes/board-2/pods/default/web/status")));
    }

    [Fact]
    public void No_local_skips_only_that_subscription_and_retain_as_published_keeps_the_flag()
    {
        _subs.Add("m", _masterSession, "m", Filter($"{P}/nodes/+/spec", noLocal: true), out _);
        var spec = Message($"{P}/nodes/board-1/spec");
        Assert.Empty(Deliveries("board-1", spec, sender: "m"));
        _subs.Add("m", _masterSession, "m", Filter($"{P}/nodes/board-1/#", MqttQualityOfServiceLevel.AtMostOnce, retainAsPublished: true), out _);
        Assert.Equal([("m", MqttQualityOfServiceLevel.AtMostOnce, true)], Deliveries("board-1", spec, sender: "m"));
        Assert.Equal([("m", MqttQualityOfServiceLevel.AtLeastOnce, true)], Deliveries("board-1", spec, sender: "other"));
    }

    [Fact]
    public void Unsubscribing_the_last_filter_of_a_node_takes_the_client_out_of_its_index()
    {
        _subs.Add("b1", _board1Session, "b1", Filter($"{P}/nodes/board-1/spec"), out var isNew);
        Assert.True(isNew);
        _subs.Add("b1", _board1Session, "b1", Filter($"{P}/nodes/board-1/spec"), out isNew);
        Assert.False(isNew);
        _subs.Add("b1", _board1Session, "b1", Filter($"{P}/nodes/board-1/pods/+/+"), out _);
        _subs.Add("m", _masterSession, "m", Filter($"{P}/nodes/+/status"), out _);

        _subs.Remove("b1", _board1Session, $"{P}/nodes/board-1/spec");
        AssertIndexed(["b1"], ["m"]);
        _subs.Remove("b1", _board1Session, $"{P}/nodes/board-1/pods/+/+");
        AssertIndexed([], ["m"]);
        _subs.Remove("m", _masterSession, $"{P}/nodes/+/status");
        AssertIndexed([], []);
        Assert.Equal(0, _subs.Clients);
        Assert.Empty(Deliveries("board-1", Message($"{P}/nodes/board-1/spec")));
    }

    [Fact]
    public void A_new_session_of_the_same_client_starts_with_nothing_of_the_old_ones()
    {
        _subs.Add("b1", _board1Session, "old", Filter($"{P}/nodes/board-1/#"), out _);
        var fresh = new object();

        // Connected again with a clean start: the old session's filters are gone.
        _subs.Forget("b1", unless: fresh);
        Assert.Empty(Deliveries("board-1", Message($"{P}/nodes/board-1/spec")));

        _subs.Add("b1", _board1Session, "old", Filter($"{P}/nodes/board-1/#"), out _);
        _subs.Add("b1", fresh, "new", Filter($"{P}/nodes/board-1/spec"), out var isNew);
        Assert.True(isNew);
        Assert.Equal(["new"], _subs.Match("board-1", Message($"{P}/nodes/board-1/spec"), null).Select(d => d.Session));
        Assert.Empty(Deliveries("board-1", Message($"{P}/nodes/board-1/status")));

        // A deleted session forgets only itself, not a newer one of the same client.
        _subs.Forget("b1", identity: _board1Session);
        Assert.Single(Deliveries("board-1", Message($"{P}/nodes/board-1/spec")));
        _subs.Forget("b1", identity: fresh);
        Assert.Empty(Deliveries("board-1", Message($"{P}/nodes/board-1/spec")));
        AssertIndexed([], []);
    }
}
