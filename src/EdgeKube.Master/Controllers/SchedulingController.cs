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
public sealed partial class SchedulingController(IObjectStore store, EventRecorder events, TimeProvider time, ILogger<SchedulingController> logger)
{
    private readonly SemaphoreSlim _kick = new(0, int.MaxValue);

    // Typed copies kept between passes (touched by the one scheduling loop only): converting every bound
    // pod and every node from JSON on each pass made a pass O(pods) conversions. A bound pod by uid (what
    // the snapshot reads, its requests, cannot change once bound); a node by name and resourceVersion.
    private int _nextStartNode;
    private Dictionary<string, V1PodSpec> _boundSpecs = new(StringComparer.Ordinal);
    private Dictionary<string, (string? Rv, V1Node Node)> _nodes = new(StringComparer.Ordinal);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var watchers = new[] { KickOnChangesAsync("pods", cancellationToken), KickOnChangesAsync("nodes", cancellationToken) };
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await ScheduleAllAsync(cancellationToken).ConfigureAwait(false);
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
        var pods = (await store.ListAsync("pods", null, cancellationToken).ConfigureAwait(false)).Items;
        var pending = pods.Where(p => p["spec"]?["nodeName"] is null && p.Metadata()["deletionTimestamp"] is null)
            .OrderBy(p => p.Metadata().Str("creationTimestamp"), StringComparer.Ordinal).ToList();
        if (pending.Count == 0)
        {
            return;
        }

        var nodes = TypedNodes((await store.ListAsync("nodes", null, cancellationToken).ConfigureAwait(false)).Items);
        var assigned = BoundSpecs(pods.Where(p => p["spec"]?["nodeName"] is not null && p["status"]?["phase"]?.GetValue<string>() is not ("Succeeded" or "Failed")));
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
        if (await BindAsync(pod, node, cancellationToken).ConfigureAwait(false))
        {
            LogBound(pod.Namespace(), pod.Name(), node);
            await events.RecordAsync(pod, "Normal", "Scheduled", $"Successfully assigned {pod.Namespace()}/{pod.Name()} to {node}", "default-scheduler", cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<bool> BindAsync(JsonObject pod, string node, CancellationToken cancellationToken)
    {
        pod.Obj("spec")["nodeName"] = node;
        SetScheduled(pod, "True", null, null);
        try
        {
            await store.UpdateAsync(Key(pod), pod, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (StoreException)
        {
            // Changed or deleted meanwhile: the next pass sees the latest.
            return false;
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

    private List<V1Node> TypedNodes(IReadOnlyList<JsonObject> nodes)
    {
        var kept = new Dictionary<string, (string? Rv, V1Node Node)>(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            var rv = node.Metadata().Str("resourceVersion");
            kept[node.Name()] = _nodes.TryGetValue(node.Name(), out var was) && was.Rv == rv ? was : (rv, Typed<V1Node>(node));
        }

        _nodes = kept;
        return [.. nodes.Select(n => kept[n.Name()].Node)];
    }

    /// <summary>The bound pods as the snapshot needs them: node name and spec.</summary>
    private List<V1Pod> BoundSpecs(IEnumerable<JsonObject> bound)
    {
        var kept = new Dictionary<string, V1PodSpec>(StringComparer.Ordinal);
        var pods = new List<V1Pod>();
        foreach (var pod in bound)
        {
            var uid = pod.Uid();
            if (!_boundSpecs.TryGetValue(uid, out var spec))
            {
                spec = pod["spec"] is JsonObject json ? KubernetesJson.Deserialize<V1PodSpec>(json.ToJsonString()) : new V1PodSpec();
            }

            kept[uid] = spec;
            pods.Add(new V1Pod { Spec = spec });
        }

        _boundSpecs = kept;
        return pods;
    }

    private static T Typed<T>(JsonObject obj) => KubernetesJson.Deserialize<T>(obj.ToJsonString());

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} bound to node {Node}")]
    private partial void LogBound(string @namespace, string name, string node);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} is unschedulable: {Message}")]
    private partial void LogUnschedulable(string @namespace, string name, string message);
}
