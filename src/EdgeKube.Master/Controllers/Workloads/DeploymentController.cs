using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Rolls Deployments out through ReplicaSets, as kube-controller-manager's deployment controller: one
/// ReplicaSet per pod template (named and labelled with the template's pod-template-hash), numbered by the
/// <c>deployment.kubernetes.io/revision</c> annotation; RollingUpdate scales the new one up and the old ones
/// down within maxSurge and maxUnavailable, Recreate scales the old ones to zero first; old ReplicaSets
/// beyond revisionHistoryLimit go; status carries the counts and the Available and Progressing conditions
/// that <c>kubectl rollout status</c> reads. <c>kubectl rollout undo</c> patches the template back to an old
/// revision's, whose ReplicaSet is then reused under the next revision number.
/// </summary>
public sealed partial class DeploymentController(ObjectWriter writer, EventRecorder events, ILogger<DeploymentController> logger)
{
    public const string HashLabel = "pod-template-hash";
    public const string RevisionAnnotation = "deployment.kubernetes.io/revision";
    public const string RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history";
    public const string DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas";
    public const string MaxReplicasAnnotation = "deployment.kubernetes.io/max-replicas";

    public static readonly IReadOnlyList<string> Watches = ["deployments.apps", "replicasets.apps"];

    /// <summary>Deployment annotations not copied to its ReplicaSets (deploymentutil's annotationsToSkip).</summary>
    private static readonly HashSet<string> AnnotationsToSkip =
    [
        "kubectl.kubernetes.io/last-applied-configuration", RevisionAnnotation, RevisionHistoryAnnotation,
        DesiredReplicasAnnotation, MaxReplicasAnnotation, "deprecated.deployment.rollback.to",
    ];

    private static readonly ApiResource Deployments = ApiResources.Find("apps", "v1", "deployments")!;
    private static readonly ApiResource ReplicaSets = ApiResources.Find("apps", "v1", "replicasets")!;

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken);

    /// <summary>One pass over every Deployment; returns when a progress deadline falls, if any.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var deployments = (await writer.Store.ListAsync(Deployments.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        if (deployments.Count == 0)
        {
            return null;
        }

        var sets = (await writer.Store.ListAsync(ReplicaSets.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        var pods = (await writer.Store.ListAsync("pods", null, cancellationToken).ConfigureAwait(false)).Items;
        DateTimeOffset? next = null;
        foreach (var d in deployments)
        {
            if (Pods.IsTerminating(d))
            {
                continue;
            }

            var owned = sets.Where(rs => rs.Namespace() == d.Namespace() && Pods.ControllerUid(rs) == d.Uid() && !Pods.IsTerminating(rs)).ToList();
            var ownedUids = owned.Select(rs => rs.Uid()).ToHashSet(StringComparer.Ordinal);
            var podsOfSets = pods.Where(p => p.Namespace() == d.Namespace() && Pods.ControllerUid(p) is { } uid && ownedUids.Contains(uid)).ToList();
            var at = await ControllerLoop.GuardAsync(() => SyncAsync(d, owned, podsOfSets, cancellationToken), d, LogObjectFailed).ConfigureAwait(false);
            if (at is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        return next;
    }

    private async Task<DateTimeOffset?> SyncAsync(JsonObject d, List<JsonObject> owned, List<JsonObject> pods, CancellationToken cancellationToken)
    {
        var spec = d["spec"] as JsonObject ?? [];
        var template = spec["template"] as JsonObject ?? [];
        var replicas = ControllerLoop.Long(spec["replicas"], 1);
        var newRs = owned.FirstOrDefault(rs => Pods.TemplatesEqual(rs["spec"]?["template"], template, HashLabel));
        var old = owned.Where(rs => !ReferenceEquals(rs, newRs)).ToList();
        var maxOldRevision = old.Select(Revision).DefaultIfEmpty(0).Max();
        var paused = ControllerLoop.Bool(spec["paused"]);
        var (surge, unavailable) = Limits(spec, replicas);
        var created = false;

        if (!paused)
        {
            if (newRs is null)
            {
                newRs = await CreateNewReplicaSetAsync(d, template, replicas, surge, old, maxOldRevision, cancellationToken).ConfigureAwait(false);
                if (newRs is null)
                {
                    return null;
                }

                created = true;
            }
            else if (Revision(newRs) <= maxOldRevision)
            {
                // A template seen before (rollout undo): its ReplicaSet comes back under the next revision.
                var meta = newRs.Metadata();
                var annotations = meta.Obj("annotations");
                var previous = Revision(newRs).ToString(CultureInfo.InvariantCulture);
                annotations[RevisionHistoryAnnotation] = annotations.Str(RevisionHistoryAnnotation) is { Length: > 0 } h ? h + "," + previous : previous;
                annotations[RevisionAnnotation] = (maxOldRevision + 1).ToString(CultureInfo.InvariantCulture);
                if (!await ControllerLoop.TryUpdateAsync(writer.Store, ReplicaSets, newRs, cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }
            }

            var revision = Revision(newRs).ToString(CultureInfo.InvariantCulture);
            if (d.Metadata()["annotations"]?[RevisionAnnotation]?.GetValue<string>() != revision)
            {
                d.Metadata().Obj("annotations")[RevisionAnnotation] = revision;
                if (!await ControllerLoop.TryUpdateAsync(writer.Store, Deployments, d, cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }
            }

            var recreate = spec["strategy"]?["type"]?.GetValue<string>() == "Recreate";
            if (recreate)
            {
                var oldUids = old.Select(rs => rs.Uid()).ToHashSet(StringComparer.Ordinal);
                var oldPodsRunning = pods.Any(p => oldUids.Contains(Pods.ControllerUid(p)!) && Pods.Phase(p) is not ("Succeeded" or "Failed"));
                await RecreateAsync(d, newRs, old, replicas, oldPodsRunning, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ReconcileNewAsync(d, newRs, owned.Append(newRs).Distinct().ToList(), replicas, surge, cancellationToken).ConfigureAwait(false);
                await ReconcileOldAsync(d, newRs, old, replicas, unavailable, cancellationToken).ConfigureAwait(false);
            }

            await CleanupAsync(d, old, cancellationToken).ConfigureAwait(false);
        }

        var all = newRs is null ? old : old.Append(newRs).ToList();
        return await WriteStatusAsync(d, newRs, all, replicas, unavailable, created, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>maxSurge rounded up and maxUnavailable rounded down against spec.replicas; both zero means one may be unavailable.</summary>
    public static (long Surge, long Unavailable) Limits(JsonObject spec, long replicas)
    {
        if (spec["strategy"]?["type"]?.GetValue<string>() == "Recreate")
        {
            return (0, replicas);
        }

        var rolling = spec["strategy"]?["rollingUpdate"];
        var surge = WorkloadRules.Scaled(rolling?["maxSurge"] ?? "25%", replicas, roundUp: true);
        var unavailable = WorkloadRules.Scaled(rolling?["maxUnavailable"] ?? "25%", replicas, roundUp: false);
        if (surge == 0 && unavailable == 0)
        {
            unavailable = 1;
        }

        return (surge, Math.Min(unavailable, replicas));
    }

    public static long Revision(JsonObject rs) =>
        long.TryParse(rs.Metadata()["annotations"]?[RevisionAnnotation]?.GetValue<string>(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var r) ? r : 0;

    private static long SpecReplicas(JsonObject rs) => ControllerLoop.Long(rs["spec"]?["replicas"]);

    private static long StatusCount(JsonObject rs, string field) => ControllerLoop.Long(rs["status"]?[field]);

    private async Task<JsonObject?> CreateNewReplicaSetAsync(JsonObject d, JsonObject template, long replicas, long surge, List<JsonObject> old, long maxOldRevision, CancellationToken cancellationToken)
    {
        var collisions = ControllerLoop.Long(d["status"]?["collisionCount"]);
        var hash = Pods.TemplateHash(template, collisions);
        var rsTemplate = template.DeepClone().AsObject();
        rsTemplate.Metadata().Obj("labels")[HashLabel] = hash;
        var selector = d["spec"]?["selector"]?.DeepClone() as JsonObject ?? [];
        selector.Obj("matchLabels")[HashLabel] = hash;
        var annotations = new JsonObject();
        foreach (var (k, v) in d.Metadata()["annotations"] as JsonObject ?? [])
        {
            if (!AnnotationsToSkip.Contains(k))
            {
                annotations[k] = v?.DeepClone();
            }
        }

        annotations[RevisionAnnotation] = (maxOldRevision + 1).ToString(CultureInfo.InvariantCulture);
        annotations[DesiredReplicasAnnotation] = replicas.ToString(CultureInfo.InvariantCulture);
        annotations[MaxReplicasAnnotation] = (replicas + surge).ToString(CultureInfo.InvariantCulture);

        // The new set starts as large as the surge allows (NewRSNewReplicas), or at full size under Recreate once the old are gone.
        long start;
        if (d["spec"]?["strategy"]?["type"]?.GetValue<string>() == "Recreate")
        {
            // Scaled up by RecreateAsync once the old pods are gone.
            start = 0;
        }
        else
        {
            var current = old.Sum(SpecReplicas);
            start = Math.Max(0, Math.Min(replicas, replicas + surge - current));
        }

        var rs = new JsonObject
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "ReplicaSet",
            ["metadata"] = new JsonObject
            {
                ["name"] = $"{d.Name()}-{hash}",
                ["namespace"] = d.Namespace(),
                ["labels"] = rsTemplate["metadata"]?["labels"]?.DeepClone(),
                ["annotations"] = annotations,
                ["ownerReferences"] = new JsonArray(Pods.ControllerRef(d)),
            },
            ["spec"] = new JsonObject
            {
                ["replicas"] = start,
                ["minReadySeconds"] = ControllerLoop.Long(d["spec"]?["minReadySeconds"]),
                ["selector"] = selector,
                ["template"] = rsTemplate,
            },
        };
        try
        {
            var created = await writer.CreateAsync(ReplicaSets, d.Namespace(), rs, cancellationToken).ConfigureAwait(false);
            LogCreated(d.Namespace(), created.Name(), start);
            await events.RecordAsync(d, "Normal", "ScalingReplicaSet", $"Scaled up replica set {created.Name()} from 0 to {start}", "deployment-controller", cancellationToken).ConfigureAwait(false);
            return created;
        }
        catch (ApiError e) when (e.Reason == "AlreadyExists")
        {
            // A ReplicaSet of that name with another template (or not ours): a hash collision; the next sync tries the next name.
            var status = d["status"]?.DeepClone() as JsonObject ?? [];
            status["collisionCount"] = collisions + 1;
            d["status"] = status;
            await ControllerLoop.TryUpdateAsync(writer.Store, Deployments, d, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (ApiError e)
        {
            LogCreateFailed(d.Namespace(), d.Name(), e.Message);
            return null;
        }
    }

    private async Task ScaleAsync(JsonObject d, JsonObject rs, long to, long desired, long surge, CancellationToken cancellationToken)
    {
        var from = SpecReplicas(rs);
        if (from == to)
        {
            return;
        }

        ControllerLoop.SetReplicas(rs, to);
        var annotations = rs.Metadata().Obj("annotations");
        annotations[DesiredReplicasAnnotation] = desired.ToString(CultureInfo.InvariantCulture);
        annotations[MaxReplicasAnnotation] = (desired + surge).ToString(CultureInfo.InvariantCulture);
        if (await ControllerLoop.TryUpdateAsync(writer.Store, ReplicaSets, rs, cancellationToken).ConfigureAwait(false))
        {
            var direction = to > from ? "up" : "down";
            await events.RecordAsync(d, "Normal", "ScalingReplicaSet", $"Scaled {direction} replica set {rs.Name()} from {from} to {to}", "deployment-controller", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>rolling.go reconcileNewReplicaSet: grow the new set up to the surge, or shrink it to spec.replicas.</summary>
    private async Task ReconcileNewAsync(JsonObject d, JsonObject newRs, List<JsonObject> all, long replicas, long surge, CancellationToken cancellationToken)
    {
        var current = SpecReplicas(newRs);
        if (current == replicas)
        {
            return;
        }

        if (current > replicas)
        {
            await ScaleAsync(d, newRs, replicas, replicas, surge, cancellationToken).ConfigureAwait(false);
            return;
        }

        var total = all.Sum(SpecReplicas);
        var room = replicas + surge - total;
        if (room > 0)
        {
            await ScaleAsync(d, newRs, Math.Min(replicas, current + room), replicas, surge, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// rolling.go reconcileOldReplicaSets: first drop old pods that are not available anyway, then scale the
    /// old sets down, oldest first, as far as keeps spec.replicas - maxUnavailable pods available.
    /// </summary>
    private async Task ReconcileOldAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, long replicas, long maxUnavailable, CancellationToken cancellationToken)
    {
        if (old.Sum(SpecReplicas) == 0)
        {
            return;
        }

        var all = old.Append(newRs).ToList();
        var minAvailable = replicas - maxUnavailable;
        var newUnavailable = Math.Max(0, SpecReplicas(newRs) - StatusCount(newRs, "availableReplicas"));
        var maxScaledDown = all.Sum(SpecReplicas) - minAvailable - newUnavailable;
        if (maxScaledDown <= 0)
        {
            return;
        }

        var byAge = old.OrderBy(rs => rs.Metadata().Str("creationTimestamp"), StringComparer.Ordinal).ThenBy(rs => rs.Name(), StringComparer.Ordinal).ToList();
        long cleaned = 0;
        foreach (var rs in byAge)
        {
            if (cleaned >= maxScaledDown)
            {
                break;
            }

            var unhealthy = SpecReplicas(rs) - StatusCount(rs, "availableReplicas");
            if (unhealthy <= 0 || SpecReplicas(rs) == 0)
            {
                continue;
            }

            var down = Math.Min(unhealthy, maxScaledDown - cleaned);
            await ScaleAsync(d, rs, SpecReplicas(rs) - down, replicas, 0, cancellationToken).ConfigureAwait(false);
            cleaned += down;
        }

        // Available pods now: the sets' reported availability, less what was just scaled away.
        var available = all.Sum(rs => Math.Min(StatusCount(rs, "availableReplicas"), SpecReplicas(rs)));
        var canDown = available - minAvailable;
        foreach (var rs in byAge)
        {
            if (canDown <= 0)
            {
                break;
            }

            var current = SpecReplicas(rs);
            if (current == 0)
            {
                continue;
            }

            var down = Math.Min(current, canDown);
            await ScaleAsync(d, rs, current - down, replicas, 0, cancellationToken).ConfigureAwait(false);
            canDown -= down;
        }
    }

    /// <summary>recreate.go: old sets to zero, and the new one up only once no old pod is left.</summary>
    private async Task RecreateAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, long replicas, bool oldPodsRunning, CancellationToken cancellationToken)
    {
        foreach (var rs in old.Where(rs => SpecReplicas(rs) > 0))
        {
            await ScaleAsync(d, rs, 0, replicas, 0, cancellationToken).ConfigureAwait(false);
        }

        // Terminating pods count: no new pod starts while an old one may still run.
        if (!oldPodsRunning && old.All(rs => SpecReplicas(rs) == 0))
        {
            await ScaleAsync(d, newRs, replicas, replicas, 0, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes the oldest empty old ReplicaSets beyond spec.revisionHistoryLimit.</summary>
    private async Task CleanupAsync(JsonObject d, List<JsonObject> old, CancellationToken cancellationToken)
    {
        var limit = ControllerLoop.Long(d["spec"]?["revisionHistoryLimit"], 10);
        var empty = old.Where(rs => SpecReplicas(rs) == 0 && StatusCount(rs, "replicas") == 0).OrderBy(Revision).ToList();
        foreach (var rs in empty.Take(Math.Max(0, empty.Count - (int)limit)))
        {
            try
            {
                await writer.DeleteAsync(ReplicaSets, rs, null, null, cancellationToken).ConfigureAwait(false);
                LogCleanedUp(rs.Namespace(), rs.Name());
            }
            catch (ApiError)
            {
            }
        }
    }

    private async Task<DateTimeOffset?> WriteStatusAsync(JsonObject d, JsonObject? newRs, List<JsonObject> all, long replicas, long maxUnavailable, bool created, CancellationToken cancellationToken)
    {
        var now = writer.Time.GetUtcNow();
        var nowText = ObjectMeta.Time(now);
        var previous = d["status"] as JsonObject ?? [];
        var status = previous.DeepClone().AsObject();
        var total = all.Sum(rs => StatusCount(rs, "replicas"));
        var updated = newRs is null ? 0 : StatusCount(newRs, "replicas");
        var ready = all.Sum(rs => StatusCount(rs, "readyReplicas"));
        var available = all.Sum(rs => StatusCount(rs, "availableReplicas"));
        status["observedGeneration"] = ControllerLoop.Long(d.Metadata()["generation"], 1);
        status["replicas"] = total;
        status["updatedReplicas"] = updated;
        status["readyReplicas"] = ready;
        status["availableReplicas"] = available;
        // As calculateStatus: the sets' desired sizes less what is available.
        status["unavailableReplicas"] = Math.Max(0, all.Sum(SpecReplicas) - available);
        foreach (var zero in new[] { "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas" })
        {
            // Go's omitempty: zero counts are left out, as kube-apiserver serialises them.
            if (ControllerLoop.Long(status[zero]) == 0)
            {
                status.Remove(zero);
            }
        }

        ControllerLoop.SetCondition(status, available >= replicas - maxUnavailable
            ? Condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", nowText)
            : Condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", nowText), keepUpdateTime: true);

        DateTimeOffset? next = null;
        var deadline = d["spec"]?["progressDeadlineSeconds"] is JsonValue pds && pds.TryGetValue<long>(out var seconds) ? seconds : (long?)null;
        var rsName = newRs?.Name() ?? string.Empty;
        var paused = ControllerLoop.Bool(d["spec"]?["paused"]);
        if (deadline is { } limit && !paused && newRs is not null)
        {
            var current = Pods.Condition(d, "Progressing");
            var complete = updated == replicas && total == replicas && available == replicas;
            var progressed = updated > ControllerLoop.Long(previous["updatedReplicas"]) || ready > ControllerLoop.Long(previous["readyReplicas"])
                || available > ControllerLoop.Long(previous["availableReplicas"]) || total < ControllerLoop.Long(previous["replicas"]);
            if (complete)
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "True", "NewReplicaSetAvailable", $"ReplicaSet \"{rsName}\" has successfully progressed.", nowText), keepUpdateTime: true);
            }
            else if (created)
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "True", "NewReplicaSetCreated", $"Created new replica set \"{rsName}\"", nowText));
            }
            else if (current is null)
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "True", "FoundNewReplicaSet", $"Found new replica set \"{rsName}\"", nowText));
            }
            else if (progressed || (current.Str("reason") == "NewReplicaSetAvailable" && current.Str("message") != $"ReplicaSet \"{rsName}\" has successfully progressed."))
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "True", "ReplicaSetUpdated", $"ReplicaSet \"{rsName}\" is progressing.", nowText));
            }
            else if (current.Str("reason") != "ProgressDeadlineExceeded" && current.Str("reason") != "NewReplicaSetAvailable")
            {
                var since = ObjectMeta.ParseTime(current.Str("lastUpdateTime")) ?? now;
                if (since.AddSeconds(limit) <= now)
                {
                    ControllerLoop.SetCondition(status, Condition("Progressing", "False", "ProgressDeadlineExceeded", $"ReplicaSet \"{rsName}\" has timed out progressing.", nowText));
                    LogDeadline(d.Namespace(), d.Name());
                }
                else
                {
                    next = since.AddSeconds(limit);
                }
            }

            if (next is null && Progressing(status) is { } progressing && progressing.Str("status") == "True" && progressing.Str("reason") != "NewReplicaSetAvailable")
            {
                next = (ObjectMeta.ParseTime(progressing.Str("lastUpdateTime")) ?? now).AddSeconds(limit);
            }
        }
        else if (paused)
        {
            ControllerLoop.SetCondition(status, Condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", nowText), keepUpdateTime: true);
        }

        await ControllerLoop.WriteStatusAsync(writer.Store, Deployments, d, status, cancellationToken).ConfigureAwait(false);
        return next;
    }

    private static JsonObject? Progressing(JsonObject status) =>
        (status["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "Progressing");

    private static JsonObject Condition(string type, string status, string reason, string message, string now) => new()
    {
        ["type"] = type,
        ["status"] = status,
        ["lastUpdateTime"] = now,
        ["lastTransitionTime"] = now,
        ["reason"] = reason,
        ["message"] = message,
    };

    [LoggerMessage(EventId = 5310, Level = LogLevel.Information, Message = "Created replica set {Namespace}/{Name} with {Replicas} replicas")]
    private partial void LogCreated(string @namespace, string name, long replicas);

    [LoggerMessage(EventId = 5311, Level = LogLevel.Warning, Message = "Deployment {Namespace}/{Name} cannot create its replica set: {Error}")]
    private partial void LogCreateFailed(string @namespace, string name, string error);

    [LoggerMessage(EventId = 5312, Level = LogLevel.Information, Message = "Deleted old replica set {Namespace}/{Name} (revision history limit)")]
    private partial void LogCleanedUp(string @namespace, string name);

    [LoggerMessage(EventId = 5313, Level = LogLevel.Warning, Message = "Deployment {Namespace}/{Name} exceeded its progress deadline")]
    private partial void LogDeadline(string @namespace, string name);

    [LoggerMessage(EventId = 5314, Level = LogLevel.Warning, Message = "Deployment sync failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 5315, Level = LogLevel.Warning, Message = "Deployment {Object} skipped: {Error}")]
    private partial void LogObjectFailed(string @object, string error);
}
