using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// One node as the filters and scores see it: its labels and taints, what it can hold and what the pods
/// already bound to it request, in scheduler units (<see cref="PodResources.ToSchedulerUnits"/>).
/// </summary>
internal sealed class NodeInfo
{
    private static readonly Dictionary<string, string> EmptyLabels = [];

    private NodeInfo(V1Node node, string name, int podCount, Dictionary<string, decimal> allocatable,
        Dictionary<string, decimal> requested, Dictionary<string, decimal> nonZeroRequested)
    {
        Node = node;
        Name = name;
        PodCount = podCount;
        Allocatable = allocatable;
        Requested = requested;
        NonZeroRequested = nonZeroRequested;
    }

    public V1Node Node { get; }

    public string Name { get; }

    public IDictionary<string, string> Labels => Node.Metadata?.Labels ?? EmptyLabels;

    public IList<V1Taint> Taints => Node.Spec?.Taints ?? [];

    /// <summary>Pods already bound to the node.</summary>
    public int PodCount { get; }

    public IReadOnlyDictionary<string, decimal> Allocatable { get; }

    /// <summary>Sum of the bound pods' requests, for the fit filter and BalancedAllocation.</summary>
    public IReadOnlyDictionary<string, decimal> Requested { get; }

    /// <summary>Sum of the bound pods' cpu and memory requests with the scoring stand-ins, for LeastAllocated.</summary>
    public IReadOnlyDictionary<string, decimal> NonZeroRequested { get; }

    public static NodeInfo Create(V1Node node, IReadOnlyList<V1Pod> boundPods)
    {
        // The API server defaults a missing allocatable to the capacity.
        var status = node.Status;
        var allocatable = PodResources.ToSchedulerUnits(
            PodResources.ToDecimals(status?.Allocatable ?? status?.Capacity));

        var requested = new Dictionary<string, decimal>(StringComparer.Ordinal);
        var nonZeroRequested = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var pod in boundPods)
        {
            var spec = pod.Spec ?? new V1PodSpec();
            Add(requested, PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: false)));
            var nonZero = PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: true));
            Add(nonZeroRequested, PodResources.Cpu, nonZero.GetValueOrDefault(PodResources.Cpu));
            Add(nonZeroRequested, PodResources.Memory, nonZero.GetValueOrDefault(PodResources.Memory));
        }

        return new NodeInfo(node, node.Metadata?.Name ?? "", boundPods.Count, allocatable, requested, nonZeroRequested);
    }

    private static void Add(Dictionary<string, decimal> into, IReadOnlyDictionary<string, decimal> amounts)
    {
        foreach (var (name, amount) in amounts)
        {
            Add(into, name, amount);
        }
    }

    private static void Add(Dictionary<string, decimal> into, string name, decimal amount) =>
        into[name] = into.GetValueOrDefault(name) + amount;
}
