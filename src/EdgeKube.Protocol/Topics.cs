namespace EdgeKube.Protocol;

/// <summary>
/// The MQTT topics between the master and the nodes (docs/protocol.md). Every topic sits under a
/// prefix (default <c>edgekube/v1</c>); a node's topics under <c>{prefix}/nodes/{node}/</c>.
/// </summary>
public sealed class Topics(string prefix = Topics.DefaultPrefix)
{
    public const string DefaultPrefix = "edgekube/v1";

    public string Prefix { get; } = prefix.TrimEnd('/');

    public string Node(string node) => $"{Prefix}/nodes/{node}";

    /// <summary>Master → node, retained: the Pod's JSON; an empty payload deletes it.</summary>
    public string Pod(string node, string ns, string name) => $"{Node(node)}/pods/{ns}/{name}";

    /// <summary>Master → node, retained: the index of the pods desired on the node.</summary>
    public string PodIndex(string node) => $"{Node(node)}/pods";

    /// <summary>Node → master, retained: a pod's status.</summary>
    public string PodStatus(string node, string ns, string name) => $"{Node(node)}/pods/{ns}/{name}/status";

    /// <summary>Master → node, retained: the node's spec (podCIDR, taints, unschedulable).</summary>
    public string NodeSpec(string node) => $"{Node(node)}/spec";

    /// <summary>Node → master, retained: the node's status.</summary>
    public string NodeStatus(string node) => $"{Node(node)}/status";

    /// <summary>Node → master, retained: "online", or "offline" from the connection's will.</summary>
    public string Presence(string node) => $"{Node(node)}/presence";

    /// <summary>Node → master, retained, QoS 0: the heartbeat with the digest of the node's last status.</summary>
    public string Lease(string node) => $"{Node(node)}/lease";

    /// <summary>Master → node, retained: flash the LEDs (<see cref="IdentifyRequest"/>); empty = stop.</summary>
    public string Identify(string node) => $"{Node(node)}/identify";

    /// <summary>The master asks the node to publish its status again (its copy differs from the lease's digest); no reply.</summary>
    public const string ResendStatus = "status";

    /// <summary>Requests to the node (logs, <see cref="ResendStatus"/>), MQTT 5 request/response.</summary>
    public string Rpc(string node, string method) => $"{Node(node)}/rpc/{method}";

    /// <summary>Node → master: replies to rpc requests (the request's MQTT 5 response topic lies here).</summary>
    public string Reply(string node, string id) => $"{Node(node)}/replies/{id}";

    /// <summary>Master → all, retained: the pod route table (<see cref="RouteTable"/>).</summary>
    public string Routes => Cluster("routes");

    /// <summary>Master → all, retained: cluster-wide data.</summary>
    public string Cluster(string what) => $"{Prefix}/cluster/{what}";

    /// <summary>
    /// What a node subscribes to: its pods (two levels below pods/), its index, its spec, identify, its
    /// rpc, and the cluster's topics (the route table) when it runs the pod network. The table lists
    /// every node, so a node with no use for it does not take it: it is O(nodes) bytes on each change.
    /// </summary>
    public IReadOnlyList<string> NodeSubscriptions(string node, bool podNetwork = true) => podNetwork
        ? [$"{Node(node)}/pods/+/+", PodIndex(node), NodeSpec(node), Identify(node), $"{Node(node)}/rpc/#", $"{Prefix}/cluster/#"]
        : [$"{Node(node)}/pods/+/+", PodIndex(node), NodeSpec(node), Identify(node), $"{Node(node)}/rpc/#"];

    /// <summary>Parses a node topic into (node, rest) when it is one.</summary>
    public bool TryParseNodeTopic(string topic, out string node, out string[] rest)
    {
        node = string.Empty;
        rest = [];
        var head = Prefix + "/nodes/";
        if (!topic.StartsWith(head, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = topic[head.Length..].Split('/');
        if (parts.Length == 0 || parts[0].Length == 0)
        {
            return false;
        }

        node = parts[0];
        rest = parts[1..];
        return true;
    }
}
