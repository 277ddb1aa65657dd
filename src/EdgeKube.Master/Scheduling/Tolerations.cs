using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>Kubernetes' rules for whether a pod's tolerations tolerate a node's taints.</summary>
internal static class Tolerations
{
    public const string NoSchedule = "NoSchedule";
    public const string PreferNoSchedule = "PreferNoSchedule";
    public const string NoExecute = "NoExecute";

    /// <summary>The taint a cordoned node (spec.unschedulable) is treated as having.</summary>
    public const string UnschedulableTaintKey = "node.kubernetes.io/unschedulable";

    /// <summary>
    /// One toleration against one taint: an empty effect matches every effect, an empty key every key
    /// (the API only allows that with Exists); Exists ignores the value, Equal (or no operator) compares it.
    /// </summary>
    public static bool Tolerates(V1Toleration toleration, string? taintKey, string? taintValue, string? taintEffect)
    {
        if (!string.IsNullOrEmpty(toleration.Effect) && toleration.Effect != (taintEffect ?? ""))
        {
            return false;
        }

        if (!string.IsNullOrEmpty(toleration.Key) && toleration.Key != (taintKey ?? ""))
        {
            return false;
        }

        return toleration.OperatorProperty switch
        {
            null or "" or "Equal" => (toleration.Value ?? "") == (taintValue ?? ""),
            "Exists" => true,
            _ => false,
        };
    }

    public static bool AnyTolerates(IEnumerable<V1Toleration>? tolerations, string? taintKey, string? taintValue, string? taintEffect) =>
        tolerations?.Any(t => t is not null && Tolerates(t, taintKey, taintValue, taintEffect)) ?? false;

    /// <summary>The first NoSchedule or NoExecute taint, in the node's order, that no toleration tolerates.</summary>
    public static V1Taint? FirstUntoleratedHardTaint(IEnumerable<V1Taint> taints, IList<V1Toleration>? tolerations) =>
        taints.FirstOrDefault(t => t is not null
            && (t.Effect == NoSchedule || t.Effect == NoExecute)
            && !AnyTolerates(tolerations, t.Key, t.Value, t.Effect));

    /// <summary>
    /// PreferNoSchedule taints not tolerated; only tolerations with an empty or PreferNoSchedule effect
    /// count here, as in kube-scheduler's TaintToleration score.
    /// </summary>
    public static int CountIntolerablePreferNoSchedule(IEnumerable<V1Taint> taints, IList<V1Toleration>? tolerations)
    {
        var preferTolerations = tolerations?
            .Where(t => t is not null && (string.IsNullOrEmpty(t.Effect) || t.Effect == PreferNoSchedule))
            .ToList();
        return taints.Count(t => t is not null
            && t.Effect == PreferNoSchedule
            && !AnyTolerates(preferTolerations, t.Key, t.Value, t.Effect));
    }
}
