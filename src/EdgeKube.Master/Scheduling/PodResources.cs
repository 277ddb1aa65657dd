using k8s.Models;

namespace EdgeKube.Master.Scheduling;

/// <summary>A pod's effective resource requests, added up the way kube-scheduler and the kubelet's admission do.</summary>
public static class PodResources
{
    /// <summary>The CPU resource name; quantities in cores.</summary>
    public const string Cpu = "cpu";

    /// <summary>The memory resource name; quantities in bytes.</summary>
    public const string Memory = "memory";

    /// <summary>The allocatable entry that caps how many pods a node runs.</summary>
    public const string Pods = "pods";

    // kube-scheduler's stand-ins, for scoring only, for a container that requests no cpu or memory:
    // without them pods without requests would all look free and pile onto one node.
    internal const decimal DefaultCpuRequest = 0.1m;
    internal const decimal DefaultMemoryRequest = 200m * 1024 * 1024;

    // Resources a pod may set at pod level (spec.resources), as Kubernetes' PodLevelResources feature.
    private static readonly string[] PodLevelResourceNames = [Cpu, Memory];

    /// <summary>
    /// The pod's requests per resource name (cpu in cores, memory in bytes, others in their own unit), exact:
    /// per resource max(sum over app containers and sidecars, the largest init container's need while the
    /// sidecars started before it run), then pod-level requests (spec.resources) for cpu and memory replace
    /// that, then spec.overhead is added. A container's limit without a request counts as its request, as
    /// the API server defaults it. Only resources that some container, the pod level or the overhead names
    /// appear.
    /// </summary>
    public static IReadOnlyDictionary<string, decimal> PodRequests(V1PodSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return Compute(spec, nonZeroDefaults: false);
    }

    /// <summary>
    /// <see cref="PodRequests"/>; with <paramref name="nonZeroDefaults"/> each container that requests no
    /// cpu (memory) counts 100m (200Mi), as kube-scheduler's scoring does.
    /// </summary>
    internal static Dictionary<string, decimal> Compute(V1PodSpec spec, bool nonZeroDefaults)
    {
        var total = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var container in spec.Containers ?? [])
        {
            Add(total, ContainerRequests(container, nonZeroDefaults));
        }

        // Init containers run one after another, each next to the sidecars (restartPolicy Always) started
        // before it; sidecars then keep running beside the app containers.
        var sidecars = new Dictionary<string, decimal>(StringComparer.Ordinal);
        var initPeak = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var container in spec.InitContainers ?? [])
        {
            var requests = ContainerRequests(container, nonZeroDefaults);
            if (container.RestartPolicy == "Always")
            {
                // Its own start needs no more than what runs afterwards, which total already holds.
                Add(total, requests);
                Add(sidecars, requests);
            }
            else
            {
                Add(requests, sidecars);
                Max(initPeak, requests);
            }
        }

        Max(total, initPeak);
        ApplyPodLevel(spec, total);
        if (spec.Overhead is { } overhead)
        {
            Add(total, ToDecimals(overhead));
        }

        return total;
    }

    /// <summary>
    /// Rounds requests or allocatable to the integers kube-scheduler compares: cpu up to whole millicores,
    /// everything else up to whole units.
    /// </summary>
    internal static Dictionary<string, decimal> ToSchedulerUnits(IReadOnlyDictionary<string, decimal> amounts)
    {
        var units = new Dictionary<string, decimal>(amounts.Count, StringComparer.Ordinal);
        foreach (var (name, amount) in amounts)
        {
            units[name] = name == Cpu ? Math.Ceiling(amount * 1000m) : Math.Ceiling(amount);
        }

        return units;
    }

    internal static Dictionary<string, decimal> ToDecimals(IDictionary<string, ResourceQuantity>? quantities)
    {
        var result = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var (name, quantity) in quantities ?? new Dictionary<string, ResourceQuantity>())
        {
            if (quantity is not null)
            {
                result[name] = quantity.ToDecimal();
            }
        }

        return result;
    }

    private static Dictionary<string, decimal> ContainerRequests(V1Container container, bool nonZeroDefaults)
    {
        var requests = ToDecimals(container.Resources?.Requests);
        foreach (var (name, limit) in ToDecimals(container.Resources?.Limits))
        {
            requests.TryAdd(name, limit);
        }

        if (nonZeroDefaults)
        {
            requests.TryAdd(Cpu, DefaultCpuRequest);
            requests.TryAdd(Memory, DefaultMemoryRequest);
        }

        return requests;
    }

    private static void ApplyPodLevel(V1PodSpec spec, Dictionary<string, decimal> total)
    {
        var requests = ToDecimals(spec.Resources?.Requests);
        var limits = ToDecimals(spec.Resources?.Limits);
        foreach (var name in PodLevelResourceNames)
        {
            if (requests.TryGetValue(name, out var request))
            {
                total[name] = request;
            }
            else if (limits.TryGetValue(name, out var limit) && !AnyContainerRequests(spec, name))
            {
                // The API server copies a pod-level limit into the pod-level request when no container
                // requests that resource; otherwise the pod-level request becomes the containers' sum.
                total[name] = limit;
            }
        }
    }

    private static bool AnyContainerRequests(V1PodSpec spec, string name) =>
        (spec.Containers ?? []).Concat(spec.InitContainers ?? [])
            .Any(c => ContainerRequests(c, nonZeroDefaults: false).ContainsKey(name));

    private static void Add(Dictionary<string, decimal> into, IReadOnlyDictionary<string, decimal> amounts)
    {
        foreach (var (name, amount) in amounts)
        {
            into[name] = into.GetValueOrDefault(name) + amount;
        }
    }

    private static void Max(Dictionary<string, decimal> into, IReadOnlyDictionary<string, decimal> amounts)
    {
        foreach (var (name, amount) in amounts)
        {
            if (!into.TryGetValue(name, out var current) || amount > current)
            {
                into[name] = amount;
            }
        }
    }
}
