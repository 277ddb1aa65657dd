using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace EdgeKube.Broker;

/// <summary>
/// Who subscribes to node topics (<c>{prefix}/nodes/{node}/…</c>), indexed by node, so that the embedded
/// broker can hand a node topic's publish to its few subscribers instead of asking every session.
/// <para>
/// MQTTnet delivers each publish by asking every session with a subscription whether it matches
/// (<c>DispatchApplicationMessage</c>, <c>CheckSubscriptions</c>): O(sessions) per message. In a
/// cluster a node topic has two subscribers, its node and the master, so at 5,000 nodes each pod status
/// cost 5,000 checks, and that was the master's hottest code once the fleet registered
/// (docs/benchmarks.md). Here a publish to <c>nodes/{node}/…</c> looks only at the clients whose filters
/// name that node, plus the clients whose filters have a wildcard in the node's place (the master's
/// <c>nodes/+/status</c>).
/// </para>
/// <para>
/// Delivery follows what MQTTnet (and MQTT 5) does for a session with several matching subscriptions:
/// one copy, at the highest QoS granted among them but never above the message's; No Local skips the
/// sender's own subscriptions; the retain flag goes out only through a Retain As Published
/// subscription. Subscription identifiers are not carried (MQTTnet's events do not expose them, and no
/// EdgeKube client uses them).
/// </para>
/// </summary>
/// <typeparam name="TSession">What a delivery goes to (the broker's MQTTnet session; any object in unit tests).</typeparam>
public sealed class NodeSubscriptions<TSession>(NodeRetainedStore scope) where TSession : class
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Subscriber> _clients = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _byNode = new(StringComparer.Ordinal);
    private readonly HashSet<string> _allNodes = new(StringComparer.Ordinal);

    /// <summary>Clients holding at least one node-topic subscription.</summary>
    public int Clients
    {
        get
        {
            lock (_gate)
            {
                return _clients.Count;
            }
        }
    }

    /// <summary>
    /// Records a subscription of <paramref name="clientId"/>'s session <paramref name="session"/>, whose
    /// identity is <paramref name="identity"/> (MQTTnet's per-session items: a new session, after a
    /// clean start, has new ones, and what the old one held is forgotten). Returns false for a filter
    /// that matches no node topic, which is not kept; <paramref name="isNew"/> says whether the session
    /// did not hold the filter before (MQTT's retain handling 1).
    /// </summary>
    public bool Add(string clientId, object identity, TSession session, MqttTopicFilter filter, out bool isNew)
    {
        isNew = false;
        var filterScope = scope.ScopeOf(filter.Topic, out var node);
        if (filterScope == FilterScope.None)
        {
            return false;
        }

        lock (_gate)
        {
            if (!_clients.TryGetValue(clientId, out var subscriber) || !ReferenceEquals(subscriber.Identity, identity))
            {
                if (subscriber is not null)
                {
                    RemoveClient(clientId, subscriber);
                }

                subscriber = new Subscriber(identity, session);
                _clients[clientId] = subscriber;
            }

            isNew = !subscriber.Filters.ContainsKey(filter.Topic);
            subscriber.Filters[filter.Topic] = new Held(filter, filterScope, node);
            if (filterScope == FilterScope.AllNodes)
            {
                _allNodes.Add(clientId);
            }
            else
            {
                if (!_byNode.TryGetValue(node!, out var clients))
                {
                    _byNode[node!] = clients = new HashSet<string>(StringComparer.Ordinal);
                }

                clients.Add(clientId);
            }
        }

        return true;
    }

    /// <summary>Drops one subscription (an UNSUBSCRIBE) of the session <paramref name="identity"/>.</summary>
    public void Remove(string clientId, object identity, string filter)
    {
        lock (_gate)
        {
            if (!_clients.TryGetValue(clientId, out var subscriber) || !ReferenceEquals(subscriber.Identity, identity)
                || !subscriber.Filters.Remove(filter, out var held))
            {
                return;
            }

            if (held.Scope == FilterScope.AllNodes)
            {
                if (!subscriber.Filters.Values.Any(h => h.Scope == FilterScope.AllNodes))
                {
                    _allNodes.Remove(clientId);
                }
            }
            else if (!subscriber.Filters.Values.Any(h => h.Node == held.Node))
            {
                Unindex(held.Node!, clientId);
            }

            if (subscriber.Filters.Count == 0)
            {
                _clients.Remove(clientId);
            }
        }
    }

    /// <summary>
    /// Forgets a client's subscriptions: its session was deleted, or (with <paramref name="unless"/>) it
    /// connected with a session other than the one they were made in.
    /// </summary>
    public void Forget(string clientId, object? identity = null, object? unless = null)
    {
        lock (_gate)
        {
            if (_clients.TryGetValue(clientId, out var subscriber)
                && (identity is null || ReferenceEquals(subscriber.Identity, identity))
                && (unless is null || !ReferenceEquals(subscriber.Identity, unless)))
            {
                RemoveClient(clientId, subscriber);
            }
        }
    }

    /// <summary>
    /// The sessions a publish of <paramref name="message"/> (to a topic of <paramref name="node"/>) goes
    /// to, each with the message as that session gets it (QoS and retain flag).
    /// </summary>
    public List<(string ClientId, object Identity, TSession Session, MqttApplicationMessage Message)> Match(string node, MqttApplicationMessage message, string? senderId)
    {
        var deliveries = new List<(string, object, TSession, MqttApplicationMessage)>(2);
        var topic = message.Topic;
        lock (_gate)
        {
            if (_byNode.TryGetValue(node, out var own))
            {
                foreach (var clientId in own)
                {
                    Consider(clientId, node);
                }
            }

            foreach (var clientId in _allNodes)
            {
                if (own is null || !own.Contains(clientId))
                {
                    Consider(clientId, node);
                }
            }
        }

        return deliveries;

        void Consider(string clientId, string node)
        {
            if (!_clients.TryGetValue(clientId, out var subscriber))
            {
                return;
            }

            var senderIsReceiver = string.Equals(senderId, clientId, StringComparison.Ordinal);
            var qos = -1;
            var retainAsPublished = false;
            foreach (var held in subscriber.Filters.Values)
            {
                if ((held.Scope == FilterScope.OneNode && held.Node != node)
                    || (held.Filter.NoLocal && senderIsReceiver)
                    || MqttTopicFilterComparer.Compare(topic, held.Filter.Topic) != MqttTopicFilterCompareResult.IsMatch)
                {
                    continue;
                }

                qos = Math.Max(qos, (int)held.Filter.QualityOfServiceLevel);
                retainAsPublished |= held.Filter.RetainAsPublished;
            }

            if (qos < 0)
            {
                return;
            }

            var granted = (MqttQualityOfServiceLevel)Math.Min(qos, (int)message.QualityOfServiceLevel);
            var retain = retainAsPublished && message.Retain;
            deliveries.Add((clientId, subscriber.Identity, subscriber.Session,
                granted == message.QualityOfServiceLevel && retain == message.Retain ? message : As(message, granted, retain)));
        }
    }

    /// <summary>The clients indexed under <paramref name="node"/> (own filters) and under every node (wildcard filters).</summary>
    public (string[] Node, string[] AllNodes) Indexed(string node)
    {
        lock (_gate)
        {
            return (_byNode.TryGetValue(node, out var clients) ? [.. clients.Order(StringComparer.Ordinal)] : [], [.. _allNodes.Order(StringComparer.Ordinal)]);
        }
    }

    private void RemoveClient(string clientId, Subscriber subscriber)
    {
        _clients.Remove(clientId);
        _allNodes.Remove(clientId);
        foreach (var node in subscriber.Filters.Values.Where(h => h.Node is not null).Select(h => h.Node!).Distinct())
        {
            Unindex(node, clientId);
        }
    }

    private void Unindex(string node, string clientId)
    {
        if (_byNode.TryGetValue(node, out var clients) && clients.Remove(clientId) && clients.Count == 0)
        {
            _byNode.Remove(node);
        }
    }

    /// <summary>The message with another QoS and retain flag; the payload is shared, as MQTTnet shares it among its subscribers.</summary>
    public static MqttApplicationMessage As(MqttApplicationMessage message, MqttQualityOfServiceLevel qos, bool retain) => new()
    {
        Topic = message.Topic,
        Payload = message.Payload,
        QualityOfServiceLevel = qos,
        Retain = retain,
        ContentType = message.ContentType,
        CorrelationData = message.CorrelationData,
        ResponseTopic = message.ResponseTopic,
        PayloadFormatIndicator = message.PayloadFormatIndicator,
        MessageExpiryInterval = message.MessageExpiryInterval,
        UserProperties = message.UserProperties,
    };

    private sealed class Subscriber(object identity, TSession session)
    {
        public object Identity { get; } = identity;

        public TSession Session { get; } = session;

        public Dictionary<string, Held> Filters { get; } = new(StringComparer.Ordinal);
    }

    private readonly record struct Held(MqttTopicFilter Filter, FilterScope Scope, string? Node);
}
