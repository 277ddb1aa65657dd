using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Api.Selectors;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Keeps each ReplicaSet's number of active pods at spec.replicas: creates pods from its template (owned by
/// it through a controller ownerReference), deletes the least useful ones first when there are too many,
/// adopts orphan pods its selector matches, and reports replicas, ready and available counts as status.
/// </summary>
public sealed partial class ReplicaSetController(ObjectWriter writer, EventRecorder events, ILogger<ReplicaSetController> logger)
{
    /// <summary>At most this many pods are created or deleted per ReplicaSet per sync (kube-controller-manager's burstReplicas).</summary>
    public const int BurstReplicas = 500;

    public static readonly IReadOnlyList<string> Watches = ["replicasets.apps", "pods"];

    private static readonly ApiResource ReplicaSets = ApiResources.Find("apps", "v1", "replicasets")!;
    private static readonly ApiResource PodResource = ApiResources.Find("", "v1", "pods")!;

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken);

    /// <summary>One pass over every ReplicaSet; returns when a pod turns available (minReadySeconds), if any.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var store = writer.Store;
        var sets = (await store.ListAsync(ReplicaSets.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        if (sets.Count == 0)
        {
            return null;
        }

        var pods = (await store.ListAsync(PodResource.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        DateTimeOffset? next = null;
        foreach (var rs in sets)
        {
            var at = await ControllerLoop.GuardAsync(() => SyncAsync(rs, pods.Where(p => p.Namespace() == rs.Namespace()).ToList(), cancellationToken), rs, LogObjectFailed).ConfigureAwait(false);
            if (at is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        return next;
    }

    private async Task<DateTimeOffset?> SyncAsync(JsonObject rs, List<JsonObject> podsInNamespace, CancellationToken cancellationToken)
    {
        var now = writer.Time.GetUtcNow();
        LabelSelector selector;
        try
        {
            selector = LabelSelector.FromJson(rs["spec"]?["selector"]);
        }
        catch (SelectorException)
        {
            return null;
        }

        var owned = new List<JsonObject>();
        foreach (var pod in podsInNamespace)
        {
            var controller = Pods.ControllerUid(pod);
            if (controller == rs.Uid())
            {
                owned.Add(pod);
            }
            else if (controller is null && !selector.IsEmpty && selector.Matches(pod.Labels()) && Pods.IsActive(pod) && !Pods.IsTerminating(rs))
            {
                // An orphan the selector matches is adopted, as kube-controller-manager's ControllerRefManager does.
                var refs = pod.Metadata()["ownerReferences"] as JsonArray ?? [];
                refs.Add(Pods.ControllerRef(rs));
                pod.Metadata()["ownerReferences"] = refs;
                if (await ControllerLoop.TryUpdateAsync(writer.Store, PodResource, pod, cancellationToken).ConfigureAwait(false))
                {
                    owned.Add(pod);
                }
            }
        }

        var active = owned.Where(Pods.IsActive).ToList();
        var wanted = ControllerLoop.Long(rs["spec"]?["replicas"], 1);
        var diff = active.Count - wanted;
        if (!Pods.IsTerminating(rs))
        {
            if (diff < 0)
            {
                var template = rs["spec"]?["template"] as JsonObject ?? [];
                var create = (int)Math.Min(-diff, BurstReplicas);
                for (var i = 0; i < create; i++)
                {
                    try
                    {
                        var created = await writer.CreateAsync(PodResource, rs.Namespace(), Pods.FromTemplate(rs, template, rs.Name() + "-"), cancellationToken).ConfigureAwait(false);
                        await events.RecordAsync(rs, "Normal", "SuccessfulCreate", $"Created pod: {created.Name()}", "replicaset-controller", cancellationToken).ConfigureAwait(false);
                    }
                    catch (ApiError e)
                    {
                        LogCreateFailed(rs.Namespace(), rs.Name(), e.Message);
                        await events.RecordAsync(rs, "Warning", "FailedCreate", $"Error creating: {e.Message}", "replicaset-controller", cancellationToken).ConfigureAwait(false);
                        break;
                    }
                }
            }
            else if (diff > 0)
            {
                foreach (var pod in Pods.InDeletionOrder(active).Take((int)Math.Min(diff, BurstReplicas)).ToList())
                {
                    try
                    {
                        await writer.DeleteAsync(PodResource, pod, null, null, cancellationToken).ConfigureAwait(false);
                        await events.RecordAsync(rs, "Normal", "SuccessfulDelete", $"Deleted pod: {pod.Name()}", "replicaset-controller", cancellationToken).ConfigureAwait(false);
                    }
                    catch (ApiError)
                    {
                        // Gone meanwhile.
                    }
                }
            }
        }

        var minReady = ControllerLoop.Long(rs["spec"]?["minReadySeconds"]);
        var templateLabels = ObjectMeta.StringMap(rs["spec"]?["template"]?["metadata"]?["labels"]);
        var status = new JsonObject
        {
            ["replicas"] = active.Count,
            ["fullyLabeledReplicas"] = active.Count(p => templateLabels.All(l => p.Labels().TryGetValue(l.Key, out var v) && v == l.Value)),
            ["readyReplicas"] = active.Count(Pods.IsReady),
            ["availableReplicas"] = active.Count(p => Pods.IsAvailable(p, minReady, now)),
            ["observedGeneration"] = ControllerLoop.Long(rs.Metadata()["generation"], 1),
        };
        await ControllerLoop.WriteStatusAsync(writer.Store, ReplicaSets, rs, status, cancellationToken).ConfigureAwait(false);
        return active.Select(p => Pods.AvailableAt(p, minReady, now)).Where(t => t is not null).Min();
    }

    [LoggerMessage(EventId = 5300, Level = LogLevel.Warning, Message = "ReplicaSet {Namespace}/{Name} cannot create a pod: {Error}")]
    private partial void LogCreateFailed(string @namespace, string name, string error);

    [LoggerMessage(EventId = 5301, Level = LogLevel.Warning, Message = "ReplicaSet sync failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 5302, Level = LogLevel.Warning, Message = "ReplicaSet {Object} skipped: {Error}")]
    private partial void LogObjectFailed(string @object, string error);
}
