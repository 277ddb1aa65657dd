using System.Globalization;
using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// spec.nodeSelector and node affinity, matched as Kubernetes' nodeaffinity helpers do. A requirement the
/// API server would reject (In with no values, Gt with a non-integer, an unknown operator or field) makes
/// its term match nothing rather than throw, so one odd pod cannot stop the scheduler.
/// </summary>
internal static class NodeAffinity
{
    /// <summary>The only field matchFields may name.</summary>
    public const string NodeNameField = "metadata.name";

    /// <summary>spec.nodeSelector (every label equal) and the required affinity (terms ORed).</summary>
    public static bool MatchesRequired(V1PodSpec spec, NodeInfo node)
    {
        foreach (var (key, value) in spec.NodeSelector ?? new Dictionary<string, string>())
        {
            if (!node.Labels.TryGetValue(key, out var actual) || actual != value)
            {
                return false;
            }
        }

        var required = spec.Affinity?.NodeAffinity?.RequiredDuringSchedulingIgnoredDuringExecution;
        if (required is null)
        {
            return true;
        }

        // A required selector without terms matches no node, as in Kubernetes (the API rejects it anyway).
        return (required.NodeSelectorTerms ?? []).Any(term => TermMatches(term, node));
    }

    /// <summary>
    /// kube-scheduler's NodeAffinity PreFilter: when every required term pins metadata.name with In, only
    /// the union of those names is worth filtering, and the other nodes are reported as not satisfying the
    /// plugin. Null when any node may fit; an empty set when the terms contradict themselves.
    /// </summary>
    public static HashSet<string>? RequiredNodeNames(V1PodSpec spec)
    {
        var terms = spec.Affinity?.NodeAffinity?.RequiredDuringSchedulingIgnoredDuringExecution?.NodeSelectorTerms;
        if (terms is null || terms.Count == 0)
        {
            return null;
        }

        HashSet<string>? union = null;
        foreach (var term in terms)
        {
            HashSet<string>? termNames = null;
            foreach (var field in term?.MatchFields ?? [])
            {
                if (field?.Key != NodeNameField || field.OperatorProperty != "In")
                {
                    continue;
                }

                // Requirements in a term are ANDed.
                var values = field.Values ?? [];
                if (termNames is null)
                {
                    termNames = new HashSet<string>(values, StringComparer.Ordinal);
                }
                else
                {
                    termNames.IntersectWith(values);
                }
            }

            if (termNames is null)
            {
                // A term without a name pin lets any node through, since terms are ORed.
                return null;
            }

            union ??= new HashSet<string>(StringComparer.Ordinal);
            union.UnionWith(termNames);
        }

        return union;
    }

    /// <summary>Sum of the weights of the preferred terms the node matches (NodeAffinity's raw score).</summary>
    public static long PreferredWeight(V1PodSpec spec, NodeInfo node)
    {
        long sum = 0;
        foreach (var preferred in spec.Affinity?.NodeAffinity?.PreferredDuringSchedulingIgnoredDuringExecution ?? [])
        {
            if (preferred is not null && preferred.Weight != 0 && preferred.Preference is not null
                && TermMatches(preferred.Preference, node))
            {
                sum += preferred.Weight;
            }
        }

        return sum;
    }

    /// <summary>matchExpressions (labels) and matchFields ANDed; an empty term matches nothing.</summary>
    public static bool TermMatches(V1NodeSelectorTerm? term, NodeInfo node)
    {
        var expressions = term?.MatchExpressions ?? [];
        var fields = term?.MatchFields ?? [];
        if (expressions.Count == 0 && fields.Count == 0)
        {
            return false;
        }

        return expressions.All(e => e is not null && LabelRequirementMatches(e, node.Labels))
            && fields.All(f => f is not null && FieldRequirementMatches(f, node.Name));
    }

    private static bool LabelRequirementMatches(V1NodeSelectorRequirement requirement, IDictionary<string, string> labels)
    {
        var values = requirement.Values ?? [];
        var present = labels.TryGetValue(requirement.Key ?? "", out var value);
        switch (requirement.OperatorProperty)
        {
            case "In":
                return values.Count > 0 && present && values.Contains(value);
            case "NotIn":
                // A node without the label is not in the set.
                return values.Count > 0 && (!present || !values.Contains(value));
            case "Exists":
                return values.Count == 0 && present;
            case "DoesNotExist":
                return values.Count == 0 && !present;
            case "Gt":
            case "Lt":
                if (values.Count != 1 || !TryParseInt64(values[0], out var bound)
                    || !present || !TryParseInt64(value, out var actual))
                {
                    return false;
                }

                return requirement.OperatorProperty == "Gt" ? actual > bound : actual < bound;
            default:
                return false;
        }
    }

    // Field selectors take exactly one value per requirement, and only In and NotIn.
    private static bool FieldRequirementMatches(V1NodeSelectorRequirement requirement, string nodeName)
    {
        if (requirement.Key != NodeNameField || requirement.Values is not { Count: 1 } values)
        {
            return false;
        }

        return requirement.OperatorProperty switch
        {
            "In" => values[0] == nodeName,
            "NotIn" => values[0] != nodeName,
            _ => false,
        };
    }

    // As Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, nothing else.
    private static bool TryParseInt64(string? s, out long result) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out result);
}
