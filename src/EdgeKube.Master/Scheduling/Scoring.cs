using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// Ranks the nodes that passed the filters, with kube-scheduler's default score plugins and weights, and
/// picks one reproducibly.
/// </summary>
/// <remarks>
/// total(node) = 1·LeastAllocated + 1·BalancedAllocation + 3·TaintToleration + 2·NodeAffinity + 2·Spread,
/// each term an integer 0..100, divisions truncating as kube-scheduler's int64 arithmetic:
/// <list type="bullet">
/// <item>LeastAllocated (NodeResourcesFit, weight 1) = (score(cpu) + score(memory)) / 2, with
/// score(r) = (alloc − req) · 100 / alloc, 0 when req &gt; alloc; a resource with alloc 0 leaves the
/// average. req = this pod's request + the bound pods' requests, where a container requesting no cpu
/// (memory) counts 100m (200Mi). cpu in millicores, memory in bytes.</item>
/// <item>BalancedAllocation (weight 1) = ⌊(1 − |f(cpu) − f(memory)| / 2) · 100⌋, f(r) = min(1, req / alloc)
/// with the real requests (no stand-ins); a resource with alloc 0 is left out (one left: deviation 0).
/// 0 on every node when the pod requests neither cpu nor memory: kube-scheduler skips the plugin for such
/// pods so that they do not all chase the same node.</item>
/// <item>TaintToleration (weight 3) = 100 − 100 · n / max(n), n = the node's PreferNoSchedule taints the
/// pod does not tolerate, max over the feasible nodes; 100 everywhere when max(n) = 0.</item>
/// <item>NodeAffinity (weight 2) = 100 · w / max(w), w = sum of the weights of the preferred terms the
/// node matches; 0 everywhere when max(w) = 0.</item>
/// <item>Spread (weight 2, standing in for PodTopologySpread's default per-host spreading) = 100 − 100 · p /
/// max(p), p = pods bound to the node; 100 everywhere when max(p) = 0.</item>
/// </list>
/// The highest total wins; equal totals go to the node whose name sorts first (ordinal), where
/// kube-scheduler would pick at random.
/// </remarks>
internal static class Scoring
{
    public const long MaxNodeScore = 100;

    private const long LeastAllocatedWeight = 1;
    private const long BalancedAllocationWeight = 1;
    private const long TaintTolerationWeight = 3;
    private const long NodeAffinityWeight = 2;
    private const long SpreadWeight = 2;

    /// <summary>One node's terms and total, for tests and diagnostics.</summary>
    public sealed record NodeScore(string NodeName, long LeastAllocated, long BalancedAllocation, long TaintToleration,
        long NodeAffinity, long Spread)
    {
        public long Total =>
            LeastAllocatedWeight * LeastAllocated
            + BalancedAllocationWeight * BalancedAllocation
            + TaintTolerationWeight * TaintToleration
            + NodeAffinityWeight * NodeAffinity
            + SpreadWeight * Spread;
    }

    /// <summary>The node to bind to, among feasible nodes (at least one).</summary>
    public static NodeInfo Pick(V1PodSpec spec, IReadOnlyList<NodeInfo> feasible)
    {
        var scores = Score(spec, feasible);
        var best = 0;
        for (var i = 1; i < feasible.Count; i++)
        {
            var order = scores[i].Total.CompareTo(scores[best].Total);
            if (order > 0 || (order == 0 && string.CompareOrdinal(feasible[i].Name, feasible[best].Name) < 0))
            {
                best = i;
            }
        }

        return feasible[best];
    }

    /// <summary>Scores in the order of <paramref name="feasible"/>.</summary>
    public static IReadOnlyList<NodeScore> Score(V1PodSpec spec, IReadOnlyList<NodeInfo> feasible)
    {
        var requests = PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: false));
        var nonZero = PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: true));
        var podCpu = requests.GetValueOrDefault(PodResources.Cpu);
        var podMemory = requests.GetValueOrDefault(PodResources.Memory);
        var bestEffort = podCpu == 0 && podMemory == 0;

        var intolerable = feasible.Select(n => (long)Tolerations.CountIntolerablePreferNoSchedule(n.Taints, spec.Tolerations)).ToList();
        var affinity = feasible.Select(n => NodeAffinity.PreferredWeight(spec, n)).ToList();
        var pods = feasible.Select(n => (long)n.PodCount).ToList();
        var taintScores = Normalize(intolerable, reverse: true);
        var affinityScores = Normalize(affinity, reverse: false);
        var spreadScores = Normalize(pods, reverse: true);

        var result = new List<NodeScore>(feasible.Count);
        for (var i = 0; i < feasible.Count; i++)
        {
            var node = feasible[i];
            result.Add(new NodeScore(
                node.Name,
                LeastAllocated(node, nonZero.GetValueOrDefault(PodResources.Cpu), nonZero.GetValueOrDefault(PodResources.Memory)),
                bestEffort ? 0 : BalancedAllocation(node, podCpu, podMemory),
                taintScores[i],
                affinityScores[i],
                spreadScores[i]));
        }

        return result;
    }

    private static long LeastAllocated(NodeInfo node, decimal podCpu, decimal podMemory)
    {
        long sum = 0;
        long weights = 0;
        foreach (var (resource, podRequest) in new[] { (PodResources.Cpu, podCpu), (PodResources.Memory, podMemory) })
        {
            var allocatable = node.Allocatable.GetValueOrDefault(resource);
            if (allocatable <= 0)
            {
                continue;
            }

            var requested = node.NonZeroRequested.GetValueOrDefault(resource) + podRequest;
            sum += requested > allocatable ? 0 : (long)decimal.Truncate((allocatable - requested) * MaxNodeScore / allocatable);
            weights++;
        }

        return weights == 0 ? 0 : sum / weights;
    }

    private static long BalancedAllocation(NodeInfo node, decimal podCpu, decimal podMemory)
    {
        var fractions = new List<double>(2);
        foreach (var (resource, podRequest) in new[] { (PodResources.Cpu, podCpu), (PodResources.Memory, podMemory) })
        {
            var allocatable = node.Allocatable.GetValueOrDefault(resource);
            if (allocatable <= 0)
            {
                continue;
            }

            var requested = node.Requested.GetValueOrDefault(resource) + podRequest;
            fractions.Add(Math.Min(1.0, (double)requested / (double)allocatable));
        }

        // With two resources the standard deviation is half their difference.
        var deviation = fractions.Count == 2 ? Math.Abs(fractions[0] - fractions[1]) / 2 : 0.0;
        return (long)((1 - deviation) * MaxNodeScore);
    }

    // kube-scheduler's DefaultNormalizeScore: scale to 0..100 by the maximum, optionally reversed.
    private static long[] Normalize(IReadOnlyList<long> raw, bool reverse)
    {
        var max = raw.Count == 0 ? 0 : raw.Max();
        var result = new long[raw.Count];
        for (var i = 0; i < raw.Count; i++)
        {
            if (max == 0)
            {
                result[i] = reverse ? MaxNodeScore : raw[i];
                continue;
            }

            var scaled = MaxNodeScore * raw[i] / max;
            result[i] = reverse ? MaxNodeScore - scaled : scaled;
        }

        return result;
    }
}
