using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// One node as the filters and scores see it: its labels and taints, what it can hold and what the pods
/// already bound to it request, in scheduler units (<see cref="PodResources.ToSchedulerUnits"/>).
/// </summary>
internal sealed class NodeInfo
{
    private static readonly Dictionary<string, string> EmptyLabels = [];

    private readonly Dictionary<string, decimal> _requested;
    private readonly Dictionary<string, decimal> _nonZeroRequested;

    private NodeInfo(V1Node node, string name, int podCount, Dictionary<string, decimal> allocatable,
        Dictionary<string, decimal> requested, Dictionary<string, decimal> nonZeroRequested)
    {
        Node = node;
        Name = name;
        PodCount = podCount;
        Allocatable = allocatable;
        _requested = requested;
        _nonZeroRequested = nonZeroRequested;
    }

    public V1Node Node { get; }

    public string Name { get; }

    public IDictionary<string, string> Labels => Node.Metadata?.Labels ?? EmptyLabels;

    public IList<V1Taint> Taints => Node.Spec?.Taints ?? [];

    /// <summary>Pods already bound to the node.</summary>
    public int PodCount { get; private set; }

    public IReadOnlyDictionary<string, decimal> Allocatable { get; }

    /// <summary>Sum of the bound pods' requests, for the fit filter and BalancedAllocation.</summary>
    public IReadOnlyDictionary<string, decimal> Requested => _requested;

    /// <summary>Sum of the bound pods' cpu and memory requests with the scoring stand-ins, for LeastAllocated.</summary>
    public IReadOnlyDictionary<string, decimal> NonZeroRequested => _nonZeroRequested;

    public static NodeInfo Create(V1Node node, IReadOnlyList<V1Pod> boundPods)
    {
        // The API server defaults a missing allocatable to the capacity.
        var status = node.Status;
        var allocatable = PodResources.ToSchedulerUnits(
            PodResources.ToDecimals(status?.Allocatable ?? status?.Capacity));

        var info = new NodeInfo(node, node.Metadata?.Name ?? "", 0, allocatable,
            new Dictionary<string, decimal>(StringComparer.Ordinal), new Dictionary<string, decimal>(StringComparer.Ordinal));
        foreach (var pod in boundPods)
        {
            info.AddPod(pod.Spec ?? new V1PodSpec());
        }

        return info;
    }

    /// <summary>Counts one more pod bound to the node (its requests), as the scheduler's cache assumes a pod it just bound.</summary>
    public void AddPod(V1PodSpec spec)
    {
        Add(_requested, PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: false)));
        var nonZero = PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: true));
        Add(_nonZeroRequested, PodResources.Cpu, nonZero.GetValueOrDefault(PodResources.Cpu));
        Add(_nonZeroRequested, PodResources.Memory, nonZero.GetValueOrDefault(PodResources.Memory));
        PodCount++;
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
