using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Bridge;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>
/// kube-controller-manager's node lifecycle, fed by MQTT: a node whose lease stops for
/// <c>--node-monitor-grace-period</c>, or whose connection's will says offline, gets Ready=Unknown
/// (NodeStatusUnknown) and the <c>node.kubernetes.io/unreachable</c> taints; a node reporting
/// Ready=False gets the <c>not-ready</c> taints; the taints go when the node is Ready again. A node under
/// MemoryPressure, DiskPressure, PIDPressure, ThermalThrottling or UnderVoltage is tainted NoSchedule
/// (<see cref="ConditionTaints"/>) until the condition clears.
/// </summary>
/// <remarks>
/// Each pass lists the nodes; it finds their pods through the shared <see cref="PodNodeIndex"/>, never by
/// listing every pod (at 50,000 pods that took hundreds of ms of CPU, and passes run every second).
/// </remarks>
public sealed partial class NodeLifecycleController(
    IObjectStore store,
    PodNodeIndex pods,
    Func<IReadOnlyDictionary<string, NodeLiveness>> liveness,
    EventRecorder events,
    TimeSpan gracePeriod,
    TimeProvider time,
    ILogger<NodeLifecycleController> logger)
{
    public const string UnreachableTaint = "node.kubernetes.io/unreachable";
    public const string NotReadyTaint = "node.kubernetes.io/not-ready";
    /// <summary>
    /// Conditions that taint the node NoSchedule while True (kube-controller-manager's TaintNodesByCondition
    /// for the pressures, and the board conditions only EdgeKube nodes report).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> ConditionTaints = new Dictionary<string, string>
    {
        ["MemoryPressure"] = "node.kubernetes.io/memory-pressure",
        ["DiskPressure"] = "node.kubernetes.io/disk-pressure",
        ["PIDPressure"] = "node.kubernetes.io/pid-pressure",
        ["ThermalThrottling"] = "edgekube.io/thermal-throttling",
        ["UnderVoltage"] = "edgekube.io/under-voltage",
    };

    private readonly DateTimeOffset _started = time.GetUtcNow();
    private readonly SemaphoreSlim _kick = new(0, int.MaxValue);
    private readonly Dictionary<string, DateTimeOffset> _orphanedSince = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Settled> _settled = new(StringComparer.Ordinal);

    /// <summary>How long a pod bound to a node that does not exist is left before it is deleted (kube-controller-manager's pod GC quarantine).</summary>
    public static readonly TimeSpan OrphanQuarantine = TimeSpan.FromSeconds(40);

    /// <summary>Look at <paramref name="node"/> now (presence or status changed).</summary>
    public void Kick(string node) => _kick.Release();

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await CheckAllAsync(cancellationToken).ConfigureAwait(false);
                await _kick.WaitAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);

                // One pass covers every kick so far: with a kick per node status, 1,000 nodes reporting would
                // otherwise queue 1,000 passes over every node and pod.
                while (_kick.CurrentCount > 0)
                {
                    await _kick.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async Task CheckAllAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var heard = liveness();
        var lostNodes = new HashSet<string>(StringComparer.Ordinal);
        var versions = await store.ListVersionsAsync("nodes", cancellationToken).ConfigureAwait(false);
        var names = versions.Select(v => v.Key.Name).ToHashSet(StringComparer.Ordinal);
        await CollectOrphansAsync(names, now, cancellationToken).ConfigureAwait(false);
        foreach (var (key, resourceVersion) in versions)
        {
            heard.TryGetValue(key.Name, out var live);
            var lost = IsLost(live, now);
            if (lost)
            {
                lostNodes.Add(key.Name);
            }

            // A node already found in order, unchanged since and with the same inputs, is in order still:
            // not read again (this pass runs every second over every node).
            var inputs = new Settled(resourceVersion, lost, live?.Offline == true, live?.ReportedStatus);
            if (_settled.TryGetValue(key.Name, out var was) && was == inputs)
            {
                continue;
            }

            _settled.Remove(key.Name);
            if (await store.GetAsync(key, cancellationToken).ConfigureAwait(false) is not { } node)
            {
                continue;
            }

            try
            {
                if (!await UpdateAsync(node, lost, live?.Offline == true, live?.ReportedStatus, now, cancellationToken).ConfigureAwait(false))
                {
                    _settled[key.Name] = inputs with { ResourceVersion = node.ResourceVersion() };
                }
            }
            catch (StoreException)
            {
                // Changed meanwhile: looked at again within a second.
            }
        }

        foreach (var gone in _settled.Keys.Where(n => !names.Contains(n)).ToList())
        {
            _settled.Remove(gone);
        }

        if (lostNodes.Count > 0)
        {
            await MarkPodsNotReadyAsync(lostNodes, now, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether a node counts as lost. Its will (presence <c>offline</c>) says so at once. Otherwise the
    /// node must have been heard from (lease, status, presence) within the grace period, as in
    /// kube-controller-manager; but while its MQTT session is open (presence not offline) the lease it
    /// declared holds for its whole duration when that is longer: the broker's keepalive and the will
    /// report a node that goes away, and an agent whose main loop hangs takes its session down, so the
    /// session itself is the proof of life and the lease, renewed rarely, is the backstop.
    /// Nodes not heard from since the master started get the time from the start, as kube-controller-manager does.
    /// </summary>
    public bool IsLost(NodeLiveness? live, DateTimeOffset now)
    {
        if (live?.Offline == true)
        {
            return true;
        }

        var last = new[] { live?.LastHeard, _started }.Max()!.Value;
        var limit = live?.LeaseDuration is { } declared && declared > gracePeriod ? declared : gracePeriod;
        return now - last > limit;
    }

    /// <summary>
    /// Pods bound to a node that is gone (removed, <c>kubectl delete node</c>) are deleted once they have
    /// been orphaned for <see cref="OrphanQuarantine"/>: nobody will ever run or stop them. They are found in
    /// the index (pods on node names not in <paramref name="nodes"/>); the one whose quarantine is over is read
    /// from the store and looked at again before it is finished, since the index may lag.
    /// </summary>
    private async Task CollectOrphansAsync(HashSet<string> nodes, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!pods.Synced.IsCompleted)
        {
            // Before its first list the index knows no pods: no pod's quarantine may start or end on that.
            return;
        }

        var orphans = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in pods.NodesWithPods())
        {
            if (nodes.Contains(node))
            {
                continue;
            }

            foreach (var pod in pods.PodsOn(node))
            {
                if (pod.Terminating && pod.Stopped)
                {
                    // Held only by finalizers once marked stopped: nothing more to do here.
                    continue;
                }

                var key = pod.Namespace + "/" + pod.Name + "/" + pod.Uid;
                orphans.Add(key);
                if (!_orphanedSince.TryGetValue(key, out var since))
                {
                    _orphanedSince[key] = now;
                    continue;
                }

                if (now - since < OrphanQuarantine)
                {
                    continue;
                }

                try
                {
                    if (await store.GetAsync(pod.Key, cancellationToken).ConfigureAwait(false) is not { } current || current.Uid() != pod.Uid
                        || PodNodeIndex.NodeNameOf(current) is not { } bound || nodes.Contains(bound)
                        || (current.Metadata()["deletionTimestamp"] is not null && ObjectWriter.IsStopped(current)))
                    {
                        // Gone, replaced, or no longer orphaned since the index saw it.
                        continue;
                    }

                    await ObjectWriter.FinishPodAsync(store, time, pod.Key, current, cancellationToken).ConfigureAwait(false);
                    LogOrphanDeleted(pod.Namespace, pod.Name, bound);
                }
                catch (StoreException)
                {
                }
            }
        }

        foreach (var gone in _orphanedSince.Keys.Where(k => !orphans.Contains(k)).ToList())
        {
            _orphanedSince.Remove(gone);
        }
    }

    /// <summary>
    /// The pods of a node that is not heard from cannot be known to be ready: their Ready condition
    /// becomes False (kube-controller-manager's MarkPodsNotReady), so nothing sends them traffic. The
    /// node reports their real status again when it returns. Only the lost nodes' pods are looked at, from
    /// the index, and only those it holds as not yet False; each is read from the store and updated from
    /// that fresh copy. One that turned Ready after the index last saw it is marked on a later pass.
    /// </summary>
    private async Task MarkPodsNotReadyAsync(HashSet<string> nodes, DateTimeOffset now, CancellationToken cancellationToken)
    {
        foreach (var node in nodes)
        {
            foreach (var seen in pods.PodsOn(node))
            {
                if (seen.ReadyStatus is null or "False")
                {
                    continue;
                }

                try
                {
                    if (await store.GetAsync(seen.Key, cancellationToken).ConfigureAwait(false) is not { } pod || PodNodeIndex.NodeNameOf(pod) != node)
                    {
                        continue;
                    }

                    var conditions = pod.Obj("status")["conditions"] as JsonArray;
                    var ready = conditions?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "Ready");
                    if (ready is null || ready.Str("status") == "False")
                    {
                        continue;
                    }

                    ready["status"] = "False";
                    ready["lastTransitionTime"] = ObjectMeta.Time(now);
                    ready.Remove("reason");
                    ready.Remove("message");
                    await store.UpdateAsync(seen.Key, pod, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false);
                    LogPodNotReady(seen.Namespace, seen.Name, node);
                }
                catch (StoreException)
                {
                    // Changed meanwhile: the next pass looks again.
                }
            }
        }
    }

    /// <summary>Brings one node's Ready condition and taints in line; whether it wrote the node.</summary>
    private async Task<bool> UpdateAsync(JsonObject node, bool lost, bool offline, JsonObject? reported, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var changed = false;
        var wasReady = (node["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "Ready")?.Str("status");
        if (!lost && wasReady == "Unknown" && reported is not null)
        {
            // Heard from again (lease or presence) but its status did not change meanwhile, so it was not sent again: what it last said holds.
            node["status"] = reported.DeepClone();
            changed = true;
        }

        var status = node.Obj("status");
        var conditions = status["conditions"] as JsonArray ?? [];
        status["conditions"] = conditions;
        var ready = conditions.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "Ready");
        if (lost && ready?.Str("status") != "Unknown")
        {
            if (ready is null)
            {
                ready = new JsonObject { ["type"] = "Ready" };
                conditions.Add(ready);
            }

            ready["status"] = "Unknown";
            ready["reason"] = "NodeStatusUnknown";
            ready["message"] = offline ? "Node went offline (its MQTT connection closed)." : "Kubelet stopped posting node status.";
            ready["lastTransitionTime"] = ObjectMeta.Time(now);
            ready["lastHeartbeatTime"] ??= ObjectMeta.Time(now);
            changed = true;
        }

        var readyNow = ready?.Str("status");
        var wanted = readyNow switch
        {
            "True" => null,
            "Unknown" => UnreachableTaint,
            _ => NotReadyTaint,
        };
        var spec = node.Obj("spec");
        var taints = spec["taints"] as JsonArray ?? [];
        foreach (var t in taints.OfType<JsonObject>().Where(t => t.Str("key") is UnreachableTaint or NotReadyTaint && t.Str("key") != wanted).ToList())
        {
            taints.Remove(t);
            changed = true;
        }

        if (wanted is not null)
        {
            foreach (var effect in new[] { "NoSchedule", "NoExecute" })
            {
                if (!taints.OfType<JsonObject>().Any(t => t.Str("key") == wanted && t.Str("effect") == effect))
                {
                    var taint = new JsonObject { ["key"] = wanted, ["effect"] = effect };
                    if (effect == "NoExecute")
                    {
                        taint["timeAdded"] = ObjectMeta.Time(now);
                    }

                    taints.Add(taint);
                    changed = true;
                }
            }
        }

        // Condition taints follow what the node reports; a lost node's last report stands until it returns.
        foreach (var (type, key) in ConditionTaints)
        {
            var on = conditions.OfType<JsonObject>().Any(c => c.Str("type") == type && c.Str("status") == "True");
            var present = taints.OfType<JsonObject>().Where(t => t.Str("key") == key).ToList();
            if (on && present.Count == 0)
            {
                taints.Add(new JsonObject { ["key"] = key, ["effect"] = "NoSchedule" });
                changed = true;
                LogConditionTaint(node.Name(), key, "added");
            }
            else if (!on && present.Count > 0)
            {
                foreach (var t in present)
                {
                    taints.Remove(t);
                }

                changed = true;
                LogConditionTaint(node.Name(), key, "removed");
            }
        }

        if (taints.Count > 0)
        {
            spec["taints"] = taints;
        }
        else
        {
            spec.Remove("taints");
        }

        if (!changed)
        {
            return false;
        }

        await store.UpdateAsync(new ObjectKey("nodes", string.Empty, node.Name()), node, node.ResourceVersion(), cancellationToken).ConfigureAwait(false);
        if (wasReady != readyNow)
        {
            var reason = readyNow == "True" ? "NodeReady" : "NodeNotReady";
            LogTransition(node.Name(), reason);
            await events.RecordAsync(node, "Normal", reason, $"Node {node.Name()} status is now: {reason}", "node-controller", cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// What a node was last found in order with: its resourceVersion and the pass's inputs for it (the status it
    /// last reported is compared by reference: the bridge replaces it whenever a new one comes).
    /// </summary>
    private sealed record Settled(long ResourceVersion, bool Lost, bool Offline, JsonObject? Reported);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} deleted: its node {Node} no longer exists")]
    private partial void LogOrphanDeleted(string @namespace, string name, string node);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name}: Ready=False, its node {Node} is not heard from")]
    private partial void LogPodNotReady(string @namespace, string name, string node);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Information, Message = "Node {Node}: taint {Taint} {Action}")]
    private partial void LogConditionTaint(string node, string taint, string action);

    [LoggerMessage(EventId = 5100, Level = LogLevel.Information, Message = "Node {Node}: {Reason}")]
    private partial void LogTransition(string node, string reason);
}
