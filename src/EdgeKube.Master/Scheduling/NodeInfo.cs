using System.Runtime.CompilerServices;
using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>
/// One node as the filters and scores see it: its labels and taints, what it can hold and what the pods
/// already bound to it request, in scheduler units (<see cref="PodResources.ToSchedulerUnits"/>).
/// </summary>
internal sealed class NodeInfo
{
    private static readonly Dictionary<string, string> EmptyLabels = [];

    // What a pod requests and what a node can hold, in scheduler units, computed once per object. A pass
    // builds every node's info again; the controller keeps the same V1Node and V1PodSpec objects across
    // passes until they change, so 100,000 bound pods are not converted from quantities on every pass.
    private static readonly ConditionalWeakTable<V1PodSpec, PodRequests> Requests = new();
    private static readonly ConditionalWeakTable<V1Node, IReadOnlyDictionary<string, decimal>> Allocatables = new();

    private sealed record PodRequests(IReadOnlyDictionary<string, decimal> Requested, decimal NonZeroCpu, decimal NonZeroMemory)
    {
        public static PodRequests Of(V1PodSpec spec)
        {
            var nonZero = PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: true));
            return new(PodResources.ToSchedulerUnits(PodResources.Compute(spec, nonZeroDefaults: false)),
                nonZero.GetValueOrDefault(PodResources.Cpu), nonZero.GetValueOrDefault(PodResources.Memory));
        }
    }

    private readonly Dictionary<string, decimal> _requested;
    private readonly Dictionary<string, decimal> _nonZeroRequested;

    private NodeInfo(V1Node node, string name, int podCount, IReadOnlyDictionary<string, decimal> allocatable,
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
        var allocatable = Allocatables.GetValue(node, static n => PodResources.ToSchedulerUnits(
            PodResources.ToDecimals(n.Status?.Allocatable ?? n.Status?.Capacity)));

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
        var requests = Requests.GetValue(spec, PodRequests.Of);
        Add(_requested, requests.Requested);
        Add(_nonZeroRequested, PodResources.Cpu, requests.NonZeroCpu);
        Add(_nonZeroRequested, PodResources.Memory, requests.NonZeroMemory);
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
