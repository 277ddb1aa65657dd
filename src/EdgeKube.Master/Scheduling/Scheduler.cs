using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// Where a pod goes. NodeName null => unschedulable; Message then is kube-scheduler's FailedScheduling text
/// (also for the event and the PodScheduled condition).
/// </summary>
public sealed record ScheduleResult(string? NodeName, string? Message);

/// <summary>
/// kube-scheduler's default profile as far as EdgeKube needs it, as a pure function: filters
/// NodeUnschedulable, TaintToleration, NodeAffinity (with its PreFilter), NodeResourcesFit; scores
/// LeastAllocated, BalancedAllocation, TaintToleration, NodeAffinity and a per-node spread (formula on
/// <see cref="Scoring"/>); failures worded exactly as kube-scheduler words them. Node conditions are not
/// looked at: a NotReady node is kept away only by its node.kubernetes.io/not-ready or unreachable taint,
/// as in Kubernetes. No preemption, so messages carry no "preemption: ..." tail.
/// </summary>
public static class Scheduler
{
    /// <summary>kube-scheduler's error when the cluster has no nodes at all.</summary>
    public const string NoNodesAvailableMessage = "no nodes available to schedule pods";

    // NodeAffinity's PreFilter outcomes (see NodeAffinity.RequiredNodeNames).
    internal const string ReasonNotInPreFilterResult = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
    internal const string ReasonAffinityTermsConflict = "pod affinity terms conflict";

    /// <summary>
    /// Picks a node for a pending pod. nodes: all nodes; assignedPods: every pod already bound to a node
    /// (spec.nodeName set) that is not terminal (phase Succeeded/Failed excluded by the caller).
    /// </summary>
    public static ScheduleResult Schedule(V1Pod pod, IReadOnlyList<V1Node> nodes, IReadOnlyList<V1Pod> assignedPods)
    {
        ArgumentNullException.ThrowIfNull(pod);
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(assignedPods);
        return Schedule(pod, Snapshot(nodes, assignedPods));
    }

    /// <summary>
    /// Every node with what its bound pods request, computed once for a scheduling pass; the pass adds
    /// each pod it binds (<see cref="NodeInfo.AddPod"/>) instead of recounting every pod for every pending one.
    /// </summary>
    internal static List<NodeInfo> Snapshot(IReadOnlyList<V1Node> nodes, IReadOnlyList<V1Pod> assignedPods)
    {
        var podsByNode = assignedPods
            .Where(p => !string.IsNullOrEmpty(p?.Spec?.NodeName))
            .GroupBy(p => p.Spec.NodeName, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<V1Pod>)g.ToList(), StringComparer.Ordinal);

        // Null entries are not nodes; they neither fit nor count in "0/N".
        return nodes.Where(n => n is not null).Select(n => NodeInfo.Create(n, podsByNode.GetValueOrDefault(n.Metadata?.Name ?? "") ?? [])).ToList();
    }

    /// <summary>Picks a node for a pending pod among the nodes of a <see cref="Snapshot"/>.</summary>
    internal static ScheduleResult Schedule(V1Pod pod, IReadOnlyList<NodeInfo> candidates)
    {
        var start = 0;
        return Schedule(pod, candidates, ref start);
    }

    /// <summary>kube-scheduler's minFeasibleNodesToFind: below this many nodes every node is filtered and scored.</summary>
    internal const int MinFeasibleNodesToFind = 100;

    /// <summary>
    /// kube-scheduler's numFeasibleNodesToFind with the default percentageOfNodesToScore (adaptive: 50 % less
    /// 1 % per 125 nodes, at least 5 %, at least 100 nodes): filtering stops once this many nodes fit, and
    /// only those are scored. Scoring every node made each decision O(nodes), 10,000 × 100,000 for the target cluster.
    /// </summary>
    internal static int NumFeasibleNodesToFind(int nodes)
    {
        if (nodes < MinFeasibleNodesToFind)
        {
            return nodes;
        }

        var percentage = Math.Max(5, 50 - (nodes / 125));
        return Math.Max(MinFeasibleNodesToFind, nodes * percentage / 100);
    }

    /// <summary>
    /// As <see cref="Schedule(V1Pod, IReadOnlyList{NodeInfo})"/>, looking at the nodes from
    /// <paramref name="start"/> on (wrapping), and moving it past the nodes looked at, as kube-scheduler's
    /// nextStartNodeIndex does, so successive pods are spread over the whole cluster.
    /// </summary>
    internal static ScheduleResult Schedule(V1Pod pod, IReadOnlyList<NodeInfo> candidates, ref int start)
    {
        if (candidates.Count == 0)
        {
            return new ScheduleResult(null, NoNodesAvailableMessage);
        }

        var spec = pod.Spec ?? new V1PodSpec();
        var nodeNames = NodeAffinity.RequiredNodeNames(spec);
        if (nodeNames is { Count: 0 })
        {
            return new ScheduleResult(null, $"{NoneAvailable(candidates.Count)} {ReasonAffinityTermsConflict}.");
        }

        var input = new Filters.PodInput(spec, PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: false)));

        var feasible = new List<NodeInfo>();
        var reasonCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var wanted = NumFeasibleNodesToFind(candidates.Count);
        var first = ((start % candidates.Count) + candidates.Count) % candidates.Count;
        var looked = 0;
        for (; looked < candidates.Count && feasible.Count < wanted; looked++)
        {
            var info = candidates[(first + looked) % candidates.Count];
            if (nodeNames is not null && !nodeNames.Contains(info.Name))
            {
                Count(reasonCounts, ReasonNotInPreFilterResult);
                continue;
            }

            var reasons = Filters.Reject(input, info);
            if (reasons.Count == 0)
            {
                feasible.Add(info);
            }

            foreach (var reason in reasons)
            {
                Count(reasonCounts, reason);
            }
        }

        start = (first + looked) % candidates.Count;
        if (feasible.Count == 0)
        {
            return new ScheduleResult(null, FitErrorMessage(candidates.Count, reasonCounts));
        }

        return new ScheduleResult(Scoring.Pick(spec, feasible).Name, null);
    }

    /// <summary>Same as <see cref="PodResources.PodRequests"/>.</summary>
    public static IReadOnlyDictionary<string, decimal> PodRequests(V1PodSpec spec) => PodResources.PodRequests(spec);

    /// <summary>
    /// "0/N nodes are available: " and each reason as "count reason", sorted as whole strings the way Go's
    /// sort.Strings does (so "10 x" before "2 y"), comma-separated, with a final period.
    /// </summary>
    internal static string FitErrorMessage(int nodeCount, IReadOnlyDictionary<string, int> reasonCounts)
    {
        var reasons = reasonCounts.Select(r => $"{r.Value} {r.Key}").Order(StringComparer.Ordinal);
        return $"{NoneAvailable(nodeCount)} {string.Join(", ", reasons)}.";
    }

    private static string NoneAvailable(int nodeCount) => $"0/{nodeCount} nodes are available:";

    private static void Count(Dictionary<string, int> counts, string reason) =>
        counts[reason] = counts.GetValueOrDefault(reason) + 1;
}
