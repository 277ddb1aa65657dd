using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// kube-scheduler's default filter plugins that apply here, with their reason texts. A node is judged by
/// the first filter that rejects it, in kube-scheduler's plugin order (<see cref="Order"/>).
/// </summary>
internal static class Filters
{
    public const string ReasonUnschedulable = "node(s) were unschedulable";
    public const string ReasonNodeAffinity = "node(s) didn't match Pod's node affinity/selector";
    public const string ReasonTooManyPods = "Too many pods";

    /// <summary>The pod being placed and its requests in scheduler units.</summary>
    public sealed record PodInput(V1PodSpec Spec, IReadOnlyDictionary<string, decimal> Requests);

    // kube-scheduler's default profile runs NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
    // NodePorts, NodeResourcesFit in this order and stops at the first rejection, so a cordoned NotReady
    // node reports "unschedulable" and a tainted mismatching node reports the taint.
    private static readonly Func<PodInput, NodeInfo, IReadOnlyList<string>>[] Order =
    [
        NodeUnschedulable,
        TaintToleration,
        NodeAffinityFilter,
        NodeResourcesFit,
    ];

    /// <summary>Why the node cannot take the pod; empty when it can.</summary>
    public static IReadOnlyList<string> Reject(PodInput pod, NodeInfo node)
    {
        foreach (var filter in Order)
        {
            var reasons = filter(pod, node);
            if (reasons.Count > 0)
            {
                return reasons;
            }
        }

        return [];
    }

    public static string UntoleratedTaintReason(V1Taint taint) =>
        $"node(s) had untolerated taint {{{taint.Key}: {taint.Value}}}";

    public static string InsufficientReason(string resource) => $"Insufficient {resource}";

    private static IReadOnlyList<string> NodeUnschedulable(PodInput pod, NodeInfo node)
    {
        var cordoned = node.Node.Spec?.Unschedulable ?? false;
        return cordoned && !Tolerations.AnyTolerates(pod.Spec.Tolerations, Tolerations.UnschedulableTaintKey, "", Tolerations.NoSchedule)
            ? [ReasonUnschedulable]
            : [];
    }

    private static IReadOnlyList<string> TaintToleration(PodInput pod, NodeInfo node) =>
        Tolerations.FirstUntoleratedHardTaint(node.Taints, pod.Spec.Tolerations) is { } taint
            ? [UntoleratedTaintReason(taint)]
            : [];

    private static IReadOnlyList<string> NodeAffinityFilter(PodInput pod, NodeInfo node) =>
        NodeAffinity.MatchesRequired(pod.Spec, node) ? [] : [ReasonNodeAffinity];

    /// <summary>
    /// Pod count against allocatable pods, then every resource the pod requests a positive amount of against
    /// allocatable minus what the bound pods request. Unlike the other filters this one reports every
    /// shortage of the node, as kube-scheduler does ("1 Insufficient cpu, 1 Insufficient memory").
    /// </summary>
    private static IReadOnlyList<string> NodeResourcesFit(PodInput pod, NodeInfo node)
    {
        var reasons = new List<string>();
        if (node.PodCount + 1 > node.Allocatable.GetValueOrDefault(PodResources.Pods))
        {
            reasons.Add(ReasonTooManyPods);
        }

        foreach (var (resource, request) in pod.Requests.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            if (request <= 0 || !IsCheckedResource(resource))
            {
                continue;
            }

            var free = node.Allocatable.GetValueOrDefault(resource) - node.Requested.GetValueOrDefault(resource);
            if (request > free)
            {
                reasons.Add(InsufficientReason(resource));
            }
        }

        return reasons;
    }

    // kube-scheduler checks cpu, memory, ephemeral-storage and the "scalar" resources: names with a domain
    // (extended resources such as edgekube.io/gpio, kubernetes.io/...), hugepages-* and attachable-volumes-*.
    // Other names without a domain it does not know, and ignores.
    private static bool IsCheckedResource(string resource) =>
        resource is PodResources.Cpu or PodResources.Memory or "ephemeral-storage"
        || resource.StartsWith("hugepages-", StringComparison.Ordinal)
        || resource.StartsWith("attachable-volumes-", StringComparison.Ordinal)
        || (resource.Contains('/') && !resource.StartsWith("requests.", StringComparison.Ordinal));
}
