using System.Buffers;
using System.Collections.Concurrent;
using MQTTnet;
using MQTTnet.Protocol;

namespace EdgeKube.Broker;

/// <summary>
/// The embedded broker's retained messages under <c>{prefix}/nodes/{node}/…</c>, kept by node.
/// <para>
/// MQTTnet keeps retained messages in one list and, for every SUBSCRIBE, copies that list and compares
/// every message with every filter. A cluster holds some 25 retained messages per node (its pods, their
/// statuses, the index, spec, status, presence, lease), so each node's connect cost O(nodes) and
/// registering a fleet O(nodes²): at 5,000 nodes that scan was the master's hottest code and
/// registration stalled (docs/benchmarks.md). Here a node's own subscriptions (<c>nodes/{node}/…</c>)
/// look only at that node's messages; a filter with a wildcard in the node's place (the master's
/// <c>nodes/+/status</c>) looks at every node's, once per subscription, as before.
/// </para>
/// <para>
/// The broker keeps node topics' retained publishes here, delivers each publish to the current
/// subscribers itself (<see cref="NodeSubscriptions{TSession}"/>), and replays the matching retained
/// ones after each subscription. The broker stores and delivers a publish under the node's lock
/// (<see cref="LockOf"/>), and the replay takes the same lock, so a subscriber never gets an older
/// retained message after a newer live one.
/// </para>
/// </summary>
public sealed class NodeRetainedStore(string prefix)
{
    private readonly string[] _head = [.. prefix.Split('/'), "nodes"];
    private readonly ConcurrentDictionary<string, Dictionary<string, MqttApplicationMessage>> _byNode = new(StringComparer.Ordinal);

    /// <summary>Retained messages held, all nodes together.</summary>
    public int Count => _byNode.Values.Sum(m => { lock (m) { return m.Count; } });

    /// <summary>Which node a topic belongs to, or null when it is not under <c>{prefix}/nodes/{node}</c>.</summary>
    public string? NodeOf(string topic)
    {
        var start = 0;
        foreach (var level in _head)
        {
            if (string.CompareOrdinal(topic, start, level, 0, level.Length) != 0 || topic.Length <= start + level.Length || topic[start + level.Length] != '/')
            {
                return null;
            }

            start += level.Length + 1;
        }

        var end = topic.IndexOf('/', start);
        var node = end < 0 ? topic[start..] : topic[start..end];
        return node.Length == 0 ? null : node;
    }

    /// <summary>What a filter can match here: nothing, one node's messages, or every node's.</summary>
    public FilterScope ScopeOf(string filter, out string? node)
    {
        node = null;
        var levels = filter.Split('/');
        for (var i = 0; i < _head.Length; i++)
        {
            if (i >= levels.Length)
            {
                return FilterScope.None;
            }

            if (levels[i] == "#")
            {
                return FilterScope.AllNodes;
            }

            if (levels[i] != "+" && levels[i] != _head[i])
            {
                return FilterScope.None;
            }
        }

        if (levels.Length == _head.Length)
        {
            // "{prefix}/nodes" itself: no node's topic is that short.
            return FilterScope.None;
        }

        var nodeLevel = levels[_head.Length];
        if (nodeLevel is "+" or "#")
        {
            return FilterScope.AllNodes;
        }

        node = nodeLevel;
        return FilterScope.OneNode;
    }

    /// <summary>
    /// Keeps (or, for an empty payload, drops) a retained publish to a node topic; returns false for a
    /// topic that is not a node's, which stays with MQTTnet's own store.
    /// </summary>
    public bool Keep(MqttApplicationMessage message)
    {
        if (NodeOf(message.Topic) is not { } node)
        {
            return false;
        }

        var held = HeldOf(node);
        lock (held)
        {
            if (message.Payload.IsEmpty)
            {
                held.Remove(message.Topic);
            }
            else
            {
                held[message.Topic] = Copy(message);
            }
        }

        return true;
    }

    /// <summary>
    /// The lock that <see cref="Keep"/> and <see cref="Replay"/> take for <paramref name="node"/>'s
    /// messages: the broker holds it while it stores and delivers a publish to that node's topics, so a
    /// replay cannot fall between the two.
    /// </summary>
    public object LockOf(string node) => HeldOf(node);

    private Dictionary<string, MqttApplicationMessage> HeldOf(string node) =>
        _byNode.GetOrAdd(node, static _ => new Dictionary<string, MqttApplicationMessage>(StringComparer.Ordinal));

    /// <summary>
    /// Hands every retained message that <paramref name="filter"/> matches to <paramref name="deliver"/>,
    /// with the retain flag set and the QoS at most <paramref name="maxQos"/>. Each node's messages are
    /// handed on under that node's lock, which <see cref="Keep"/> takes too.
    /// </summary>
    public int Replay(string filter, MqttQualityOfServiceLevel maxQos, Action<MqttApplicationMessage> deliver)
    {
        var delivered = 0;
        switch (ScopeOf(filter, out var one))
        {
            case FilterScope.OneNode:
                if (_byNode.TryGetValue(one!, out var held))
                {
                    delivered += ReplayFrom(held, filter, maxQos, deliver);
                }

                break;
            case FilterScope.AllNodes:
                foreach (var (_, messages) in _byNode)
                {
                    delivered += ReplayFrom(messages, filter, maxQos, deliver);
                }

                break;
        }

        return delivered;
    }

    private static int ReplayFrom(Dictionary<string, MqttApplicationMessage> held, string filter, MqttQualityOfServiceLevel maxQos, Action<MqttApplicationMessage> deliver)
    {
        var delivered = 0;
        lock (held)
        {
            foreach (var message in held.Values)
            {
                if (MqttTopicFilterComparer.Compare(message.Topic, filter) != MqttTopicFilterCompareResult.IsMatch)
                {
                    continue;
                }

                // MQTT: the server never upgrades a message's QoS for a subscription.
                deliver(message.QualityOfServiceLevel <= maxQos ? message : WithQos(message, maxQos));
                delivered++;
            }
        }

        return delivered;
    }

    /// <summary>A copy that owns its payload and carries the retain flag, as a retained message is sent on subscribe.</summary>
    private static MqttApplicationMessage Copy(MqttApplicationMessage message)
    {
        var copy = NodeSubscriptions<object>.As(message, message.QualityOfServiceLevel, retain: true);
        copy.Payload = new ReadOnlySequence<byte>(message.Payload.ToArray());
        return copy;
    }

    private static MqttApplicationMessage WithQos(MqttApplicationMessage message, MqttQualityOfServiceLevel qos) =>
        NodeSubscriptions<object>.As(message, qos, retain: true);
}

/// <summary>What a subscription filter can match among node topics.</summary>
public enum FilterScope
{
    None,
    OneNode,
    AllNodes,
}
