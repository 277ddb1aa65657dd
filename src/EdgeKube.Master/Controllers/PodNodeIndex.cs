using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>
/// The pods bound to each node, kept from one list of the pods and then their watch, as kube-controller-manager's
/// shared pod informer with its <c>spec.nodeName</c> indexer. The node lifecycle and taint eviction look at a
/// few nodes' pods every second, and the scheduler at the pending pods and what the bound ones request; a
/// list of all pods for that read and parsed every pod (hundreds of ms of CPU at 50,000 pods, each time).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>One writer (<see cref="RunAsync"/>); readers on any thread get snapshots and never see half a change.</item>
/// <item>Like an informer's cache it lags the store a little. It says which pods to look at, not what they are
/// now: a reader that writes a pod reads it from the store first (<see cref="IObjectStore.GetAsync"/>, a fresh
/// copy with the resourceVersion to update against) and decides again on that copy.</item>
/// <item>Bound pods are kept by node, and pods waiting for a node by age (<see cref="PendingPod"/>, for the
/// scheduler); only what the controllers pick pods by (<see cref="BoundPod"/>), not the
/// objects: 50,000 parsed pods would hold hundreds of MB on a board, and a parsed <see cref="JsonObject"/> is not
/// safe to read from several threads (it materializes its children on first access).</item>
/// <item>A watch that falls behind (<see cref="StoreErrorKind.Expired"/>) is answered with a new list, which
/// replaces the index whole; until then readers see the index as it was.</item>
/// </list>
/// </remarks>
public sealed partial class PodNodeIndex(IObjectStore store, ILogger<PodNodeIndex> logger)
{
    // Pods mostly share a few toleration lists (the API server's defaults, one per workload), so each distinct
    // list is parsed once and shared; cleared when full, so pods with lists of their own cannot grow it without bound.
    private const int TolerationSetCapacity = 1_024;

    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by _lock. Pod keys are "namespace/name".
    private readonly List<(long ResourceVersion, TaskCompletionSource Reached)> _waiters = [];
    private Dictionary<string, BoundPod> _pods = new(StringComparer.Ordinal);
    private Dictionary<string, Dictionary<string, BoundPod>> _byNode = new(StringComparer.Ordinal);
    private Dictionary<string, PendingPod> _pending = new(StringComparer.Ordinal);
    private long _resourceVersion;

    // Only the writer (RunAsync) uses it.
    private readonly Dictionary<string, IReadOnlyList<V1Toleration>> _tolerationSets = new(StringComparer.Ordinal);

    /// <summary>Completes once the first list is in the index; until then it holds no pods.</summary>
    public Task Synced => _synced.Task;

    /// <summary>The store's resourceVersion the index is consistent with: its list's, or that of the last pod change it applied (0 before the first list).</summary>
    public long ResourceVersion
    {
        get
        {
            lock (_lock)
            {
                return _resourceVersion;
            }
        }
    }

    /// <summary>How many bound pods the index holds.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _pods.Count;
            }
        }
    }

    /// <summary>The pods bound to <paramref name="node"/>, by namespace then name (the store's list order); empty for a node without pods.</summary>
    public IReadOnlyList<BoundPod> PodsOn(string node)
    {
        BoundPod[] pods;
        lock (_lock)
        {
            if (!_byNode.TryGetValue(node, out var onNode))
            {
                return [];
            }

            pods = [.. onNode.Values];
        }

        Array.Sort(pods, static (a, b) =>
        {
            var byNamespace = string.CompareOrdinal(a.Namespace, b.Namespace);
            return byNamespace != 0 ? byNamespace : string.CompareOrdinal(a.Name, b.Name);
        });
        return pods;
    }

    /// <summary>Every bound pod (a snapshot, in no particular order): what the scheduler counts on each node.</summary>
    public IReadOnlyList<BoundPod> AllBound()
    {
        lock (_lock)
        {
            return [.. _pods.Values];
        }
    }

    /// <summary>The pods waiting for a node (not bound, not being deleted), oldest first (creationTimestamp, then namespace/name).</summary>
    public IReadOnlyList<PendingPod> Pending()
    {
        PendingPod[] pending;
        lock (_lock)
        {
            if (_pending.Count == 0)
            {
                return [];
            }

            pending = [.. _pending.Values];
        }

        Array.Sort(pending, static (a, b) =>
        {
            var byTime = string.CompareOrdinal(a.CreationTimestamp, b.CreationTimestamp);
            if (byTime != 0)
            {
                return byTime;
            }

            var byNamespace = string.CompareOrdinal(a.Namespace, b.Namespace);
            return byNamespace != 0 ? byNamespace : string.CompareOrdinal(a.Name, b.Name);
        });
        return pending;
    }

    /// <summary>The names of the nodes at least one pod is bound to, whether or not such a node exists.</summary>
    public IReadOnlyList<string> NodesWithPods()
    {
        lock (_lock)
        {
            return [.. _byNode.Keys];
        }
    }

    /// <summary>
    /// Completes once the index holds every pod change up to <paramref name="resourceVersion"/>, as the watch
    /// cache's wait for a fresh enough version. Give the resourceVersion of a pod write: the index sees no other
    /// resource, so for a later write to something else it waits for the next pod change. A wait that is
    /// cancelled stays registered until that version is reached (one small entry).
    /// </summary>
    public Task WaitForAsync(long resourceVersion, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_synced.Task.IsCompleted && _resourceVersion >= resourceVersion)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((resourceVersion, reached));
            return reached.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>The node a pod object is bound to, or null when it is not bound.</summary>
    public static string? NodeNameOf(JsonObject pod) =>
        pod["spec"]?["nodeName"] is JsonValue value && value.TryGetValue<string>(out var node) && node.Length > 0 ? node : null;

    /// <summary>Lists the pods, then follows their watch; lists again whenever the watch has fallen behind.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var list = await store.ListAsync("pods", null, cancellationToken).ConfigureAwait(false);
                Replace(list);
                await foreach (var e in store.WatchAsync("pods", null, list.ResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    Apply(e);
                }

                // Ended without an error: cancelled, or the store is closing (the list then says so).
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
            {
                LogRelist(e.Message);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Builds the index from a list off the lock, then swaps it in whole.</summary>
    private void Replace(StoreList list)
    {
        var pods = new Dictionary<string, BoundPod>(StringComparer.Ordinal);
        var byNode = new Dictionary<string, Dictionary<string, BoundPod>>(StringComparer.Ordinal);
        var pending = new Dictionary<string, PendingPod>(StringComparer.Ordinal);
        foreach (var obj in list.Items)
        {
            var key = obj.Namespace() + "/" + obj.Name();
            if (Bound(obj) is { } pod)
            {
                pods[key] = pod;
                Add(byNode, key, pod);
            }
            else if (Waiting(obj) is { } waiting)
            {
                pending[key] = waiting;
            }
        }

        lock (_lock)
        {
            _pods = pods;
            _byNode = byNode;
            _pending = pending;
            // Under the lock, so a WaitForAsync cannot see the list's version without the index being synced.
            _synced.TrySetResult();
            Reached(list.ResourceVersion);
        }

        LogListed(pods.Count, byNode.Count, list.ResourceVersion);
    }

    private void Apply(WatchEvent e)
    {
        var key = e.Key.Namespace + "/" + e.Key.Name;
        var pod = e.Type == WatchEventType.Deleted ? null : Bound(e.Object);
        var waiting = e.Type == WatchEventType.Deleted || pod is not null ? null : Waiting(e.Object);
        lock (_lock)
        {
            if (waiting is not null)
            {
                _pending[key] = waiting;
            }
            else
            {
                _pending.Remove(key);
            }

            // The API server does not let a pod move to another node, but the store does not forbid it: the old entry always goes.
            if (_pods.Remove(key, out var old) && _byNode.TryGetValue(old.NodeName, out var onNode))
            {
                onNode.Remove(key);
                if (onNode.Count == 0)
                {
                    _byNode.Remove(old.NodeName);
                }
            }

            if (pod is not null)
            {
                _pods[key] = pod;
                Add(_byNode, key, pod);
            }

            Reached(e.ResourceVersion);
        }
    }

    private static void Add(Dictionary<string, Dictionary<string, BoundPod>> byNode, string key, BoundPod pod)
    {
        if (!byNode.TryGetValue(pod.NodeName, out var onNode))
        {
            onNode = new Dictionary<string, BoundPod>(StringComparer.Ordinal);
            byNode[pod.NodeName] = onNode;
        }

        onNode[key] = pod;
    }

    /// <summary>Under <see cref="_lock"/>: the index now holds every change up to <paramref name="resourceVersion"/>.</summary>
    private void Reached(long resourceVersion)
    {
        _resourceVersion = resourceVersion;
        for (var i = _waiters.Count - 1; i >= 0; i--)
        {
            if (_waiters[i].ResourceVersion <= resourceVersion)
            {
                _waiters[i].Reached.TrySetResult();
                _waiters.RemoveAt(i);
            }
        }
    }

    /// <summary>What the index keeps of a pod, or null when it is not bound (nothing to keep).</summary>
    private BoundPod? Bound(JsonObject obj)
    {
        if (NodeNameOf(obj) is not { } node)
        {
            return null;
        }

        var ready = (obj["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "Ready")?.Str("status");
        return new BoundPod(obj.Namespace(), obj.Name(), obj.Uid(), node, obj.ResourceVersion(),
            obj.Metadata()["deletionTimestamp"] is not null, ObjectWriter.IsStopped(obj), ready, TolerationsOf(obj), (obj["status"] as JsonObject)?.Str("phase"));
    }

    /// <summary>Whether the pod waits for the scheduler: not bound to a node and not being deleted.</summary>
    public static bool IsPending(JsonObject pod) => NodeNameOf(pod) is null && pod.Metadata()["deletionTimestamp"] is null;

    /// <summary>What the index keeps of a pod that waits for the scheduler, or null for one that does not (bound, or being deleted).</summary>
    private static PendingPod? Waiting(JsonObject obj) =>
        IsPending(obj) ? new PendingPod(obj.Namespace(), obj.Name(), obj.Metadata().Str("creationTimestamp") ?? string.Empty) : null;

    private IReadOnlyList<V1Toleration> TolerationsOf(JsonObject pod)
    {
        if (pod["spec"]?["tolerations"] is not JsonArray { Count: > 0 } tolerations)
        {
            return [];
        }

        var text = tolerations.ToJsonString();
        if (_tolerationSets.TryGetValue(text, out var parsed))
        {
            return parsed;
        }

        if (_tolerationSets.Count >= TolerationSetCapacity)
        {
            _tolerationSets.Clear();
        }

        parsed = [.. tolerations.OfType<JsonObject>().Select(t => KubernetesJson.Deserialize<V1Toleration>(t.ToJsonString()))];
        _tolerationSets[text] = parsed;
        return parsed;
    }

    [LoggerMessage(EventId = 5500, Level = LogLevel.Warning, Message = "Pod index: the pods watch ended ({Reason}); listing all pods again")]
    private partial void LogRelist(string reason);

    [LoggerMessage(EventId = 5501, Level = LogLevel.Debug, Message = "Pod index: {Pods} bound pods on {Nodes} nodes, as of resourceVersion {ResourceVersion}")]
    private partial void LogListed(int pods, int nodes, long resourceVersion);
}

/// <summary>A bound pod as <see cref="PodNodeIndex"/> last saw it: enough to pick pods by, not to write them (read the pod from the store for that).</summary>
/// <param name="Namespace">metadata.namespace.</param>
/// <param name="Name">metadata.name.</param>
/// <param name="Uid">metadata.uid: tells a pod from one recreated under its name.</param>
/// <param name="NodeName">spec.nodeName.</param>
/// <param name="ResourceVersion">The version seen.</param>
/// <param name="Terminating">metadata.deletionTimestamp is set.</param>
/// <param name="Stopped">Nothing runs it any more (<see cref="ObjectWriter.IsStopped"/>: deleted with grace period 0).</param>
/// <param name="ReadyStatus">The status of its Ready condition, or null without one.</param>
/// <param name="Tolerations">spec.tolerations; shared between pods with the same list, so read them only.</param>
/// <param name="Phase">status.phase, or null before the node reported one.</param>
public sealed record BoundPod(
    string Namespace,
    string Name,
    string Uid,
    string NodeName,
    long ResourceVersion,
    bool Terminating,
    bool Stopped,
    string? ReadyStatus,
    IReadOnlyList<V1Toleration> Tolerations,
    string? Phase = null)
{
    /// <summary>The pod's key in the store.</summary>
    public ObjectKey Key => new("pods", Namespace, Name);
}

/// <summary>A pod waiting for a node as <see cref="PodNodeIndex"/> last saw it; read it from the store before binding it.</summary>
public sealed record PendingPod(string Namespace, string Name, string CreationTimestamp)
{
    /// <summary>The pod's key in the store.</summary>
    public ObjectKey Key => new("pods", Namespace, Name);
}
