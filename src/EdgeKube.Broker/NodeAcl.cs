using EdgeKube.Protocol;

namespace EdgeKube.Broker;

/// <summary>
/// Who may publish and subscribe where (docs/protocol.md). The master's account may do anything
/// under the prefix. A node's account (user name = node name) may read its own topics and the
/// cluster's, and write only its status, presence, lease, its pods' status and its rpc replies:
/// never another node's topics, never pod specs. Pure, so the embedded broker and the mosquitto ACL
/// file are generated from the same rules and tested once.
/// </summary>
public sealed class NodeAcl(string prefix = Topics.DefaultPrefix, string masterUser = NodeAcl.MasterUser)
{
    public const string MasterUser = "edgekube-master";

    private readonly Topics _topics = new(prefix);

    public string Prefix => _topics.Prefix;

    /// <summary>Topic patterns a node may publish to, with <c>{node}</c> for its name (mosquitto's %u).</summary>
    public static readonly IReadOnlyList<string> NodeWritePatterns =
    [
        "nodes/{node}/status",
        "nodes/{node}/presence",
        "nodes/{node}/lease",
        "nodes/{node}/pods/+/+/status",
        "nodes/{node}/replies/#",
    ];

    /// <summary>Topic filters a node may subscribe to.</summary>
    public static readonly IReadOnlyList<string> NodeReadPatterns =
    [
        "nodes/{node}/#",
        "cluster/#",
    ];

    public bool CanPublish(string user, string topic)
    {
        if (!topic.StartsWith(Prefix + "/", StringComparison.Ordinal) || topic.Contains('+') || topic.Contains('#'))
        {
            return false;
        }

        if (user == masterUser)
        {
            return true;
        }

        return NodeWritePatterns.Any(p => Matches(Expand(p, user), topic));
    }

    /// <summary>A subscription is allowed when everything the filter can match is readable.</summary>
    public bool CanSubscribe(string user, string filter)
    {
        if (!filter.StartsWith(Prefix + "/", StringComparison.Ordinal))
        {
            return user == masterUser && filter == "#";
        }

        if (user == masterUser)
        {
            return true;
        }

        return NodeReadPatterns.Any(p => Covers(Expand(p, user), filter));
    }

    private string Expand(string pattern, string node) => Prefix + "/" + pattern.Replace("{node}", node, StringComparison.Ordinal);

    /// <summary>MQTT topic matching: does <paramref name="filter"/> match <paramref name="topic"/>?</summary>
    public static bool Matches(string filter, string topic)
    {
        var f = filter.Split('/');
        var t = topic.Split('/');
        for (var i = 0; i < f.Length; i++)
        {
            if (f[i] == "#")
            {
                return true;
            }

            if (i >= t.Length)
            {
                return false;
            }

            if (f[i] != "+" && f[i] != t[i])
            {
                return false;
            }
        }

        return f.Length == t.Length;
    }

    /// <summary>Is every topic matched by <paramref name="inner"/> also matched by <paramref name="outer"/>?</summary>
    public static bool Covers(string outer, string inner)
    {
        var o = outer.Split('/');
        var n = inner.Split('/');
        for (var i = 0; i < o.Length; i++)
        {
            if (o[i] == "#")
            {
                return true;
            }

            if (i >= n.Length || n[i] == "#")
            {
                return false;
            }

            if (o[i] == "+")
            {
                continue;
            }

            if (n[i] == "+" || n[i] != o[i])
            {
                return false;
            }
        }

        return o.Length == n.Length;
    }
}
