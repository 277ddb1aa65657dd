using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Scheduling;
using EdgeKube.Master.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>
/// Binds pending pods to nodes with <see cref="Scheduler"/>: on every pod or node change and every few
/// seconds. A pod that fits nowhere gets PodScheduled=False/Unschedulable and a FailedScheduling event.
/// </summary>
/// <remarks>
/// Pods come from the shared <see cref="PodNodeIndex"/>, as kube-scheduler's come from its informer: a pass
/// reads from the store only the pending pods (fresh, to bind against their resourceVersion) and the specs
/// of pods bound since the last pass. It used to list every pod each pass; while pods were being created a
/// pass ran for nearly every new pod, and at 5,000 nodes that list (every pod parsed) was most of the
/// master's allocations and kept its GC paused half the time (docs/benchmarks.md).
/// </remarks>
public sealed partial class SchedulingController(IObjectStore store, PodNodeIndex index, EventRecorder events, TimeProvider time, ILogger<SchedulingController> logger)
{
    private readonly SemaphoreSlim _kick = new(0, int.MaxValue);

    // Typed copies kept between passes (touched by the one scheduling loop only): converting every bound
    // pod and every node from JSON on each pass made a pass O(pods) conversions. A bound pod by uid (what
    // the snapshot reads, its requests, cannot change once bound); a node by name and resourceVersion.
    private int _nextStartNode;
    private Dictionary<string, V1PodSpec> _boundSpecs = new(StringComparer.Ordinal);
    private Dictionary<string, (long Rv, V1Node Node)> _nodes = new(StringComparer.Ordinal);

    // The resourceVersion of the latest binding this controller wrote (any thread of a pass), and of the latest
    // pending pod's change that woke it: the pod index must hold both before a pass reads it.
    private long _lastBound;
    private long _lastKicked;

    private static void Raise(ref long field, long value)
    {
        long seen;
        do
        {
            seen = Interlocked.Read(ref field);
        }
        while (value > seen && Interlocked.CompareExchange(ref field, value, seen) != seen);
    }

    /// <summary>The longest rest between passes (see <see cref="RunAsync"/>).</summary>
    private static readonly TimeSpan MaxRest = TimeSpan.FromSeconds(1);

    /// <summary>How long a pass waits for the pod index to hold its last bindings and the change that woke it.</summary>
    private static readonly TimeSpan IndexWait = TimeSpan.FromSeconds(5);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var watchers = new[] { KickOnChangesAsync("pods", cancellationToken), KickOnChangesAsync("nodes", cancellationToken) };
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var started = time.GetTimestamp();
                await ScheduleAllAsync(cancellationToken).ConfigureAwait(false);

                // A pass costs O(nodes + bound pods) (the snapshot); while pods keep coming, a pass per new pod
                // made that cost per pod. Resting twice as long as the pass took lets pending pods gather, so
                // passes take at most a third of the time: nothing in a small cluster, a batch per pass in a
                // large one.
                var rest = time.GetElapsedTime(started) * 2;
                if (rest > TimeSpan.FromMilliseconds(1))
                {
                    await Task.Delay(rest < MaxRest ? rest : MaxRest, time, cancellationToken).ConfigureAwait(false);
                }

                await _kick.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                while (_kick.CurrentCount > 0)
                {
                    await _kick.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        await Task.WhenAll(watchers).ConfigureAwait(false);
    }

    private async Task KickOnChangesAsync(string resource, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var e in store.WatchAsync(resource, null, store.CurrentResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    if (resource == "nodes" || e.Object["spec"]?["nodeName"] is null)
                    {
                        if (resource == "pods")
                        {
                            // The pass reads pending pods from the index, which follows its own watch: it must
                            // hold this change before the pass looks, or the new pod waits for the next kick.
                            Raise(ref _lastKicked, e.ResourceVersion);
                        }

                        _kick.Release();
                    }
                }
            }
            catch (StoreException)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One pass: every pending pod, oldest first.</summary>
    public async Task ScheduleAllAsync(CancellationToken cancellationToken)
    {
        // The index must hold this master's own last bindings, or the pass would not count them on their nodes.
        await index.Synced.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var seen = Math.Max(Interlocked.Read(ref _lastBound), Interlocked.Read(ref _lastKicked));
            await index.WaitForAsync(seen, cancellationToken).WaitAsync(IndexWait, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The index is behind (relisting after its watch fell behind): schedule with what it holds, which
            // may not count a binding it has not seen yet.
            LogIndexBehind(IndexWait.TotalSeconds);
        }

        var waiting = index.Pending();
        if (waiting.Count == 0)
        {
            return;
        }

        var pending = new List<JsonObject>(waiting.Count);
        foreach (var seen in waiting)
        {
            // The index lags the store a little: what is bound or being deleted by now is not pending.
            if (await store.GetAsync(seen.Key, cancellationToken).ConfigureAwait(false) is { } pod && PodNodeIndex.IsPending(pod))
            {
                pending.Add(pod);
            }
        }

        if (pending.Count == 0)
        {
            return;
        }

        var nodes = await TypedNodesAsync(cancellationToken).ConfigureAwait(false);
        var assigned = await BoundSpecsAsync(index.AllBound().Where(p => p.Phase is not ("Succeeded" or "Failed")), cancellationToken).ConfigureAwait(false);
        // One snapshot per pass, kept up to date with each binding it makes.
        var snapshot = Scheduler.Snapshot(nodes, assigned);
        var byName = snapshot.GroupBy(i => i.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        // Binding is a store write that waits for its commit; as kube-scheduler does, the pass assumes the
        // pod on its node at once and lets the binding finish meanwhile (up to MaxBindsInFlight), so the
        // store commits many bindings together instead of the pass waiting for each one in turn.
        var binding = new List<Task>();
        foreach (var pod in pending)
        {
            var typed = Typed<V1Pod>(pod);
            var result = Scheduler.Schedule(typed, snapshot, ref _nextStartNode);
            if (result.NodeName is { } node)
            {
                byName[node].AddPod(typed.Spec ?? new V1PodSpec());
                binding.Add(BindAndRecordAsync(pod, node, cancellationToken));
                if (binding.Count >= MaxBindsInFlight)
                {
                    await Task.WhenAny(binding).ConfigureAwait(false);
                    binding.RemoveAll(t => t.IsCompleted);
                }
            }
            else
            {
                await MarkUnschedulableAsync(pod, result.Message ?? "no nodes available", cancellationToken).ConfigureAwait(false);
            }
        }

        await Task.WhenAll(binding).ConfigureAwait(false);
    }

    /// <summary>How many bindings a pass lets run at once.</summary>
    internal const int MaxBindsInFlight = 64;

    private async Task BindAndRecordAsync(JsonObject pod, string node, CancellationToken cancellationToken)
    {
        // A failed binding (the pod changed or went meanwhile) stays assumed for the rest of this pass only;
        // the next pass starts from the store again.
        if (await BindAsync(pod, node, cancellationToken).ConfigureAwait(false) is { } rv)
        {
            Raise(ref _lastBound, rv);

            LogBound(pod.Namespace(), pod.Name(), node);
            await events.RecordAsync(pod, "Normal", "Scheduled", $"Successfully assigned {pod.Namespace()}/{pod.Name()} to {node}", "default-scheduler", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Binds the pod; the resourceVersion of the binding, or null when the pod changed or went meanwhile.</summary>
    private async Task<long?> BindAsync(JsonObject pod, string node, CancellationToken cancellationToken)
    {
        pod.Obj("spec")["nodeName"] = node;
        SetScheduled(pod, "True", null, null);
        try
        {
            return (await store.UpdateAsync(Key(pod), pod, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false)).ResourceVersion();
        }
        catch (StoreException)
        {
            // Changed or deleted meanwhile: the next pass sees the latest.
            return null;
        }
    }

    private async Task MarkUnschedulableAsync(JsonObject pod, string message, CancellationToken cancellationToken)
    {
        var current = (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "PodScheduled");
        if (current?.Str("status") == "False" && current.Str("message") == message)
        {
            return;
        }

        SetScheduled(pod, "False", "Unschedulable", message);
        try
        {
            await store.UpdateAsync(Key(pod), pod, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException)
        {
            return;
        }

        LogUnschedulable(pod.Namespace(), pod.Name(), message);
        await events.RecordAsync(pod, "Warning", "FailedScheduling", message, "default-scheduler", cancellationToken).ConfigureAwait(false);
    }

    private void SetScheduled(JsonObject pod, string status, string? reason, string? message)
    {
        var conditions = pod.Obj("status")["conditions"] as JsonArray ?? [];
        foreach (var old in conditions.OfType<JsonObject>().Where(c => c.Str("type") == "PodScheduled").ToList())
        {
            conditions.Remove(old);
        }

        conditions.Add(new JsonObject
        {
            ["type"] = "PodScheduled",
            ["status"] = status,
            ["lastProbeTime"] = null,
            ["lastTransitionTime"] = ObjectMeta.Time(time.GetUtcNow()),
            ["reason"] = reason,
            ["message"] = message,
        });
        pod.Obj("status")["conditions"] = conditions;
        pod.Obj("status")["phase"] ??= "Pending";
    }

    private static ObjectKey Key(JsonObject pod) => new("pods", pod.Namespace(), pod.Name());

    /// <summary>The nodes, typed; only those changed since the last pass are read from the store and converted.</summary>
    private async Task<List<V1Node>> TypedNodesAsync(CancellationToken cancellationToken)
    {
        var kept = new Dictionary<string, (long Rv, V1Node Node)>(StringComparer.Ordinal);
        var nodes = new List<V1Node>();
        foreach (var (key, resourceVersion) in await store.ListVersionsAsync("nodes", cancellationToken).ConfigureAwait(false))
        {
            if (!_nodes.TryGetValue(key.Name, out var typed) || typed.Rv != resourceVersion)
            {
                if (await store.GetAsync(key, cancellationToken).ConfigureAwait(false) is not { } node)
                {
                    continue;
                }

                typed = (node.ResourceVersion(), Typed<V1Node>(node));
            }

            kept[key.Name] = typed;
            nodes.Add(typed.Node);
        }

        _nodes = kept;
        return nodes;
    }

    /// <summary>
    /// The bound pods as the snapshot needs them: node name and spec. A bound pod's requests cannot change, so
    /// each spec is read from the store once, when the pod is first seen bound, and kept by uid.
    /// </summary>
    private async Task<List<V1Pod>> BoundSpecsAsync(IEnumerable<BoundPod> bound, CancellationToken cancellationToken)
    {
        var kept = new Dictionary<string, V1PodSpec>(StringComparer.Ordinal);
        var pods = new List<V1Pod>();
        foreach (var pod in bound)
        {
            if (!_boundSpecs.TryGetValue(pod.Uid, out var spec))
            {
                var stored = await store.GetAsync(pod.Key, cancellationToken).ConfigureAwait(false);
                if (stored is null || stored.Uid() != pod.Uid)
                {
                    // Gone or recreated since the index saw it: the next pass sees what is there now.
                    continue;
                }

                spec = stored["spec"] is JsonObject json ? KubernetesJson.Deserialize<V1PodSpec>(json.ToJsonString()) : new V1PodSpec();
                spec.NodeName ??= pod.NodeName;
            }

            kept[pod.Uid] = spec;
            pods.Add(new V1Pod { Spec = spec });
        }

        _boundSpecs = kept;
        return pods;
    }

    private static T Typed<T>(JsonObject obj) => KubernetesJson.Deserialize<T>(obj.ToJsonString());

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} bound to node {Node}")]
    private partial void LogBound(string @namespace, string name, string node);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "The pod index did not catch up with the last bindings within {Seconds} s; scheduling with what it holds")]
    private partial void LogIndexBehind(double seconds);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} is unschedulable: {Message}")]
    private partial void LogUnschedulable(string @namespace, string name, string message);
}
