using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Scheduling;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Runs one pod of each DaemonSet on every node it fits (spec.template's nodeSelector and required node
/// affinity, and taints its tolerations allow), bound to that node at creation; removes pods from nodes that
/// no longer fit and replaces failed ones; rolls template changes out node by node within maxUnavailable;
/// reports the scheduled, ready, available and updated counts as status.
/// </summary>
public sealed partial class DaemonSetController(ObjectWriter writer, EventRecorder events, ILogger<DaemonSetController> logger)
{
    /// <summary>Label naming the template revision a daemon pod was made from.</summary>
    public const string HashLabel = "controller-revision-hash";

    public static readonly IReadOnlyList<string> Watches = ["daemonsets.apps", "pods", "nodes"];

    private static readonly ApiResource DaemonSets = ApiResources.Find("apps", "v1", "daemonsets")!;
    private static readonly ApiResource PodResource = ApiResources.Find("", "v1", "pods")!;

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken);

    /// <summary>One pass over every DaemonSet; returns when a pod turns available (minReadySeconds), if any.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var sets = (await writer.Store.ListAsync(DaemonSets.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        if (sets.Count == 0)
        {
            return null;
        }

        var nodes = (await writer.Store.ListAsync("nodes", null, cancellationToken).ConfigureAwait(false)).Items;
        var pods = (await writer.Store.ListAsync(PodResource.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        DateTimeOffset? next = null;
        foreach (var ds in sets)
        {
            var owned = pods.Where(p => p.Namespace() == ds.Namespace() && Pods.ControllerUid(p) == ds.Uid()).ToList();
            var at = await ControllerLoop.GuardAsync(() => SyncAsync(ds, nodes, owned, cancellationToken), ds, LogObjectFailed).ConfigureAwait(false);
            if (at is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        return next;
    }

    /// <summary>The tolerations every daemon pod gets (daemon.AddOrUpdateDaemonPodTolerations): node trouble does not evict it.</summary>
    public static void AddDaemonTolerations(JsonObject podSpec)
    {
        var tolerations = podSpec["tolerations"] as JsonArray ?? [];
        void Add(string key, string effect)
        {
            if (!tolerations.OfType<JsonObject>().Any(t => t.Str("key") == key && t.Str("effect") == effect))
            {
                tolerations.Add(new JsonObject { ["key"] = key, ["operator"] = "Exists", ["effect"] = effect });
            }
        }

        Add("node.kubernetes.io/not-ready", "NoExecute");
        Add("node.kubernetes.io/unreachable", "NoExecute");
        Add("node.kubernetes.io/disk-pressure", "NoSchedule");
        Add("node.kubernetes.io/memory-pressure", "NoSchedule");
        Add("node.kubernetes.io/pid-pressure", "NoSchedule");
        Add(Tolerations.UnschedulableTaintKey, "NoSchedule");
        podSpec["tolerations"] = tolerations;
    }

    /// <summary>Whether a daemon pod with <paramref name="podSpec"/> (daemon tolerations included) belongs on <paramref name="node"/>.</summary>
    public static bool ShouldRun(JsonObject podSpec, JsonObject node)
    {
        var typedSpec = KubernetesJson.Deserialize<V1PodSpec>(podSpec.ToJsonString());
        var typedNode = KubernetesJson.Deserialize<V1Node>(node.ToJsonString());
        var info = NodeInfo.Create(typedNode, []);
        if (!NodeAffinity.MatchesRequired(typedSpec, info))
        {
            return false;
        }

        return Tolerations.FirstUntoleratedHardTaint(info.Taints, typedSpec.Tolerations) is null;
    }

    private async Task<DateTimeOffset?> SyncAsync(JsonObject ds, IReadOnlyList<JsonObject> nodes, List<JsonObject> owned, CancellationToken cancellationToken)
    {
        var now = writer.Time.GetUtcNow();
        var template = ds["spec"]?["template"] as JsonObject ?? [];
        var hash = Pods.TemplateHash(template);
        var podSpec = template["spec"]?.DeepClone() as JsonObject ?? [];
        AddDaemonTolerations(podSpec);
        var minReady = ControllerLoop.Long(ds["spec"]?["minReadySeconds"]);
        var terminating = Pods.IsTerminating(ds);

        long desired = 0, current = 0, misscheduled = 0, ready = 0, available = 0, updated = 0;
        var wanted = new List<(JsonObject Node, JsonObject? Pod)>();
        foreach (var node in nodes)
        {
            var nodeName = node.Name();
            var onNode = owned.Where(p => p["spec"]?["nodeName"]?.GetValue<string>() == nodeName).ToList();
            var active = onNode.Where(Pods.IsActive).OrderBy(p => p.Metadata().Str("creationTimestamp"), StringComparer.Ordinal).ToList();
            bool fits;
            try
            {
                fits = ShouldRun(podSpec, node);
            }
            catch (System.Text.Json.JsonException)
            {
                fits = false;
            }

            if (!fits)
            {
                if (active.Count > 0)
                {
                    misscheduled++;
                }

                await DeleteAllAsync(ds, active, cancellationToken).ConfigureAwait(false);
                continue;
            }

            desired++;
            // A failed daemon pod is replaced (the next sync creates its successor once it is gone).
            await DeleteAllAsync(ds, onNode.Where(p => !Pods.IsTerminating(p) && Pods.Phase(p) == "Failed").ToList(), cancellationToken).ConfigureAwait(false);
            if (active.Count == 0)
            {
                if (!terminating && !onNode.Any(Pods.IsTerminating))
                {
                    await CreateAsync(ds, template, podSpec, hash, nodeName, cancellationToken).ConfigureAwait(false);
                }

                wanted.Add((node, null));
                continue;
            }

            current++;
            // More than one on a node: keep the oldest.
            await DeleteAllAsync(ds, active.Skip(1).ToList(), cancellationToken).ConfigureAwait(false);
            var pod = active[0];
            wanted.Add((node, pod));
            ready += Pods.IsReady(pod) ? 1 : 0;
            available += Pods.IsAvailable(pod, minReady, now) ? 1 : 0;
            updated += pod.Labels().GetValueOrDefault(HashLabel) == hash ? 1 : 0;
        }

        if (!terminating && ds["spec"]?["updateStrategy"]?["type"]?.GetValue<string>() != "OnDelete")
        {
            await RollAsync(ds, wanted, hash, desired, minReady, now, cancellationToken).ConfigureAwait(false);
        }

        var status = new JsonObject
        {
            ["currentNumberScheduled"] = current,
            ["numberMisscheduled"] = misscheduled,
            ["desiredNumberScheduled"] = desired,
            ["numberReady"] = ready,
            ["observedGeneration"] = ControllerLoop.Long(ds.Metadata()["generation"], 1),
            ["updatedNumberScheduled"] = updated,
            ["numberAvailable"] = available,
            ["numberUnavailable"] = desired - available,
        };
        foreach (var zero in new[] { "numberAvailable", "numberUnavailable", "updatedNumberScheduled" })
        {
            if (ControllerLoop.Long(status[zero]) == 0)
            {
                status.Remove(zero);
            }
        }

        await ControllerLoop.WriteStatusAsync(writer.Store, DaemonSets, ds, status, cancellationToken).ConfigureAwait(false);
        return wanted.Select(w => w.Pod is null ? null : Pods.AvailableAt(w.Pod, minReady, now)).Where(t => t is not null).Min();
    }

    /// <summary>
    /// RollingUpdate: pods of an older template go, unavailable ones at once and available ones only while
    /// fewer than maxUnavailable of the wanted nodes lack an available pod; each is recreated from the new template.
    /// </summary>
    private async Task RollAsync(JsonObject ds, List<(JsonObject Node, JsonObject? Pod)> wanted, string hash, long desired, long minReady, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var maxUnavailable = Math.Max(1, WorkloadRules.Scaled(ds["spec"]?["updateStrategy"]?["rollingUpdate"]?["maxUnavailable"] ?? 1, desired, roundUp: true));
        var unavailable = wanted.Count(w => w.Pod is null || !Pods.IsAvailable(w.Pod, minReady, now));
        foreach (var (_, pod) in wanted)
        {
            if (pod is null || pod.Labels().GetValueOrDefault(HashLabel) == hash)
            {
                continue;
            }

            if (!Pods.IsAvailable(pod, minReady, now))
            {
                await DeleteAllAsync(ds, [pod], cancellationToken).ConfigureAwait(false);
            }
            else if (unavailable < maxUnavailable)
            {
                await DeleteAllAsync(ds, [pod], cancellationToken).ConfigureAwait(false);
                unavailable++;
            }
        }
    }

    private async Task CreateAsync(JsonObject ds, JsonObject template, JsonObject podSpec, string hash, string nodeName, CancellationToken cancellationToken)
    {
        var pod = Pods.FromTemplate(ds, template, ds.Name() + "-");
        pod["spec"] = podSpec.DeepClone();
        pod["spec"]!["nodeName"] = nodeName;
        var labels = pod.Metadata().Obj("labels");
        labels[HashLabel] = hash;
        labels["pod-template-generation"] = ControllerLoop.Long(ds.Metadata()["generation"], 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            var created = await writer.CreateAsync(PodResource, ds.Namespace(), pod, cancellationToken).ConfigureAwait(false);
            await events.RecordAsync(ds, "Normal", "SuccessfulCreate", $"Created pod: {created.Name()}", "daemonset-controller", cancellationToken).ConfigureAwait(false);
        }
        catch (ApiError e)
        {
            LogCreateFailed(ds.Namespace(), ds.Name(), nodeName, e.Message);
            await events.RecordAsync(ds, "Warning", "FailedCreate", $"Error creating: {e.Message}", "daemonset-controller", cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DeleteAllAsync(JsonObject ds, List<JsonObject> pods, CancellationToken cancellationToken)
    {
        foreach (var pod in pods)
        {
            try
            {
                await writer.DeleteAsync(PodResource, pod, null, null, cancellationToken).ConfigureAwait(false);
                await events.RecordAsync(ds, "Normal", "SuccessfulDelete", $"Deleted pod: {pod.Name()}", "daemonset-controller", cancellationToken).ConfigureAwait(false);
            }
            catch (ApiError)
            {
            }
        }
    }

    [LoggerMessage(EventId = 5320, Level = LogLevel.Warning, Message = "DaemonSet {Namespace}/{Name} cannot create its pod on {Node}: {Error}")]
    private partial void LogCreateFailed(string @namespace, string name, string node, string error);

    [LoggerMessage(EventId = 5321, Level = LogLevel.Warning, Message = "DaemonSet sync failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 5322, Level = LogLevel.Warning, Message = "DaemonSet {Object} skipped: {Error}")]
    private partial void LogObjectFailed(string @object, string error);
}
