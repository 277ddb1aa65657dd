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

        if (newRs is not null && !await SyncNewReplicaSetAsync(d, newRs, maxOldRevision, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        if (paused || IsScalingEvent(replicas, newRs, old))
        {
            // syncDeployment's sync(): a paused deployment, or one just scaled, only resizes the sets it has
            // (proportionally while a rollout is under way); no new ReplicaSet, no rollout step.
            await ScaleAsync(d, newRs, old, replicas, surge, cancellationToken).ConfigureAwait(false);
            if (paused)
            {
                await CleanupAsync(d, old, cancellationToken).ConfigureAwait(false);
            }

            return await WriteStatusAsync(d, newRs, newRs is null ? old : [.. old, newRs], replicas, unavailable, created, estimateProgress: false, cancellationToken).ConfigureAwait(false);
        }

        if (newRs is null)
        {
            newRs = await CreateNewReplicaSetAsync(d, template, replicas, surge, old, maxOldRevision, cancellationToken).ConfigureAwait(false);
            if (newRs is null || !await SyncDeploymentRevisionAsync(d, newRs, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            created = true;
        }

        var recreate = spec["strategy"]?["type"]?.GetValue<string>() == "Recreate";
        if (recreate)
        {
            var oldUids = old.Select(rs => rs.Uid()).ToHashSet(StringComparer.Ordinal);
            var oldPodsRunning = pods.Any(p => oldUids.Contains(Pods.ControllerUid(p)!) && Pods.Phase(p) is not ("Succeeded" or "Failed"));
            await RecreateAsync(d, newRs, old, replicas, surge, oldPodsRunning, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await ReconcileNewAsync(d, newRs, [.. old, newRs], replicas, surge, cancellationToken).ConfigureAwait(false);
            await ReconcileOldAsync(d, newRs, old, replicas, surge, unavailable, cancellationToken).ConfigureAwait(false);
        }

        // As rolloutRolling / rolloutRecreate: old sets are cleaned up once the rollout is complete.
        if (IsComplete(d, d["status"] as JsonObject, replicas))
        {
            await CleanupAsync(d, old, cancellationToken).ConfigureAwait(false);
        }

        return await WriteStatusAsync(d, newRs, [.. old, newRs], replicas, unavailable, created, estimateProgress: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// getNewReplicaSet for an existing set: a template seen before (rollout undo) comes back under the next
    /// revision; minReadySeconds follows the deployment's; the deployment carries the set's revision.
    /// False when a write lost a race (the next sync starts again).
    /// </summary>
    private async Task<bool> SyncNewReplicaSetAsync(JsonObject d, JsonObject newRs, long maxOldRevision, CancellationToken cancellationToken)
    {
        var changed = false;
        if (Revision(newRs) <= maxOldRevision)
        {
            var annotations = newRs.Metadata().Obj("annotations");
            var previous = Revision(newRs).ToString(CultureInfo.InvariantCulture);
            annotations[RevisionHistoryAnnotation] = annotations.Str(RevisionHistoryAnnotation) is { Length: > 0 } h ? h + "," + previous : previous;
            annotations[RevisionAnnotation] = (maxOldRevision + 1).ToString(CultureInfo.InvariantCulture);
            changed = true;
        }

        var minReady = ControllerLoop.Long(d["spec"]?["minReadySeconds"]);
        if (ControllerLoop.Long(newRs["spec"]?["minReadySeconds"]) != minReady)
        {
            newRs.Obj("spec")["minReadySeconds"] = minReady;
            newRs.Metadata()["generation"] = ControllerLoop.Long(newRs.Metadata()["generation"]) + 1;
            changed = true;
        }

        if (changed && !await ControllerLoop.TryUpdateAsync(writer.Store, ReplicaSets, newRs, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        return await SyncDeploymentRevisionAsync(d, newRs, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> SyncDeploymentRevisionAsync(JsonObject d, JsonObject newRs, CancellationToken cancellationToken)
    {
        var revision = Revision(newRs).ToString(CultureInfo.InvariantCulture);
        if (d.Metadata()["annotations"]?[RevisionAnnotation]?.GetValue<string>() == revision)
        {
            return true;
        }

        d.Metadata().Obj("annotations")[RevisionAnnotation] = revision;
        return await ControllerLoop.TryUpdateAsync(writer.Store, Deployments, d, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// isScalingEvent: an active ReplicaSet (spec.replicas &gt; 0) was last sized for another spec.replicas
    /// than the deployment's (its <c>deployment.kubernetes.io/desired-replicas</c> annotation).
    /// </summary>
    public static bool IsScalingEvent(long replicas, JsonObject? newRs, IEnumerable<JsonObject> old) =>
        old.Append(newRs).OfType<JsonObject>().Where(rs => SpecReplicas(rs) > 0)
            .Any(rs => DesiredAnnotation(rs) is { } desired && desired != replicas);

    private static long? DesiredAnnotation(JsonObject rs) => IntAnnotation(rs, DesiredReplicasAnnotation);

    private static long? IntAnnotation(JsonObject rs, string name) =>
        long.TryParse(rs.Metadata()["annotations"]?[name]?.GetValue<string>(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>
    /// sync.go scale(): with one active set (or none), that one (or the newest) takes spec.replicas; a saturated
    /// new set means the old ones go to zero; otherwise, under RollingUpdate, the replicas added or removed
    /// (against spec.replicas + maxSurge) are shared among the active sets in proportion to their size, each
    /// set's share computed against the size the deployment had when the set was last scaled (its
    /// <c>deployment.kubernetes.io/max-replicas</c> annotation); what rounding leaves over goes to the first set
    /// in scaling order: the largest, and of equal ones the newest when scaling up, the oldest when scaling down.
    /// </summary>
    private async Task ScaleAsync(JsonObject d, JsonObject? newRs, List<JsonObject> old, long replicas, long surge, CancellationToken cancellationToken)
    {
        var sizes = ProportionalSizes(d, newRs, old, replicas, surge);
        foreach (var (rs, size) in sizes)
        {
            await SetSizeAsync(d, rs, size, replicas, surge, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The sizes <see cref="ScaleAsync"/> gives the sets, in the order it writes them (pure, for the tests).</summary>
    public static List<(JsonObject Set, long Size)> ProportionalSizes(JsonObject d, JsonObject? newRs, List<JsonObject> old, long replicas, long surge)
    {
        var active = old.Append(newRs).OfType<JsonObject>().Where(rs => SpecReplicas(rs) > 0).ToList();
        if (active.Count <= 1)
        {
            // FindActiveOrLatest: the only active set, or with none the new set, else the newest old one.
            var target = active.FirstOrDefault() ?? newRs ?? old.OrderByDescending(rs => rs.Metadata().Str("creationTimestamp"), StringComparer.Ordinal)
                .ThenByDescending(rs => rs.Name(), StringComparer.Ordinal).FirstOrDefault();
            return target is null ? [] : [(target, replicas)];
        }

        if (newRs is not null && IsSaturated(newRs, replicas))
        {
            return [.. old.Where(rs => SpecReplicas(rs) > 0).Select(rs => (rs, 0L))];
        }

        if (d["spec"]?["strategy"]?["type"]?.GetValue<string>() == "Recreate")
        {
            // Recreate shares nothing (it runs one set at a time); the sets are only re-annotated, so the
            // scaling event is over and the rollout goes on.
            return [.. active.Select(rs => (rs, SpecReplicas(rs)))];
        }

        var allowed = replicas > 0 ? replicas + surge : 0;
        var toAdd = allowed - active.Sum(SpecReplicas);
        if (toAdd == 0)
        {
            return [.. active.Select(rs => (rs, SpecReplicas(rs)))];
        }

        // Larger sets first; of equal size, newer first when growing and older first when shrinking.
        var ordered = toAdd > 0
            ? active.OrderByDescending(SpecReplicas).ThenByDescending(rs => rs.Metadata().Str("creationTimestamp"), StringComparer.Ordinal).ThenByDescending(rs => rs.Name(), StringComparer.Ordinal).ToList()
            : active.OrderByDescending(SpecReplicas).ThenBy(rs => rs.Metadata().Str("creationTimestamp"), StringComparer.Ordinal).ThenBy(rs => rs.Name(), StringComparer.Ordinal).ToList();
        var statusReplicas = ControllerLoop.Long(d["status"]?["replicas"]);
        long added = 0;
        var sizes = new List<(JsonObject Set, long Size)>();
        foreach (var rs in ordered)
        {
            var proportion = Proportion(rs, replicas, surge, statusReplicas, toAdd, added);
            sizes.Add((rs, SpecReplicas(rs) + proportion));
            added += proportion;
        }

        sizes[0] = (sizes[0].Set, Math.Max(0, sizes[0].Size + toAdd - added));
        return sizes;
    }

    /// <summary>GetProportion: this set's share of <paramref name="toAdd"/>, never past what is left of it.</summary>
    private static long Proportion(JsonObject rs, long replicas, long surge, long statusReplicas, long toAdd, long added)
    {
        var size = SpecReplicas(rs);
        if (size == 0 || toAdd == added)
        {
            return 0;
        }

        long fraction;
        if (replicas == 0)
        {
            fraction = -size;
        }
        else
        {
            // The size of the deployment (with surge) when this set was last scaled; without the annotation, its current size.
            var before = IntAnnotation(rs, MaxReplicasAnnotation) is { } m && m != 0 ? m : statusReplicas;
            fraction = before == 0 ? 0 : (long)Math.Round((double)(size * (replicas + surge)) / before, MidpointRounding.AwayFromZero) - size;
        }

        var allowed = toAdd - added;
        return toAdd > 0 ? Math.Min(fraction, allowed) : Math.Max(fraction, allowed);
    }

    /// <summary>IsSaturated: the new set holds spec.replicas, was sized for it, and all of them are available.</summary>
    private static bool IsSaturated(JsonObject rs, long replicas) =>
        SpecReplicas(rs) == replicas && DesiredAnnotation(rs) == replicas && StatusCount(rs, "availableReplicas") == replicas;

    /// <summary>DeploymentComplete: every replica updated and available, on the deployment's current generation.</summary>
    private static bool IsComplete(JsonObject d, JsonObject? status, long replicas) =>
        status is not null
        && ControllerLoop.Long(status["updatedReplicas"]) == replicas
        && ControllerLoop.Long(status["replicas"]) == replicas
        && ControllerLoop.Long(status["availableReplicas"]) == replicas
        && ControllerLoop.Long(status["observedGeneration"]) >= ControllerLoop.Long(d.Metadata()["generation"], 1);

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

    /// <summary>scaleReplicaSetAndRecordEvent: resizes a set (a rollout step); nothing when it has that size already.</summary>
    private Task StepAsync(JsonObject d, JsonObject rs, long to, long replicas, long surge, CancellationToken cancellationToken) =>
        SpecReplicas(rs) == to ? Task.CompletedTask : SetSizeAsync(d, rs, to, replicas, surge, cancellationToken);

    /// <summary>
    /// scaleReplicaSet: gives a set its size and the deployment's current spec.replicas and spec.replicas +
    /// maxSurge as its desired-replicas and max-replicas annotations, which proportional scaling reads later.
    /// </summary>
    private async Task SetSizeAsync(JsonObject d, JsonObject rs, long to, long replicas, long surge, CancellationToken cancellationToken)
    {
        var from = SpecReplicas(rs);
        var desired = replicas.ToString(CultureInfo.InvariantCulture);
        var max = (replicas + surge).ToString(CultureInfo.InvariantCulture);
        var annotations = rs.Metadata().Obj("annotations");
        if (from == to && annotations.Str(DesiredReplicasAnnotation) == desired && annotations.Str(MaxReplicasAnnotation) == max)
        {
            return;
        }

        if (from != to)
        {
            ControllerLoop.SetReplicas(rs, to);
        }

        annotations[DesiredReplicasAnnotation] = desired;
        annotations[MaxReplicasAnnotation] = max;
        if (await ControllerLoop.TryUpdateAsync(writer.Store, ReplicaSets, rs, cancellationToken).ConfigureAwait(false) && from != to)
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
            await StepAsync(d, newRs, replicas, replicas, surge, cancellationToken).ConfigureAwait(false);
            return;
        }

        var total = all.Sum(SpecReplicas);
        var room = replicas + surge - total;
        if (room > 0)
        {
            await StepAsync(d, newRs, Math.Min(replicas, current + room), replicas, surge, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// rolling.go reconcileOldReplicaSets: first drop old pods that are not available anyway, then scale the
    /// old sets down, oldest first, as far as keeps spec.replicas - maxUnavailable pods available.
    /// </summary>
    private async Task ReconcileOldAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, long replicas, long surge, long maxUnavailable, CancellationToken cancellationToken)
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
            await StepAsync(d, rs, SpecReplicas(rs) - down, replicas, surge, cancellationToken).ConfigureAwait(false);
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
            await StepAsync(d, rs, current - down, replicas, surge, cancellationToken).ConfigureAwait(false);
            canDown -= down;
        }
    }

    /// <summary>recreate.go: old sets to zero, and the new one up only once no old pod is left.</summary>
    private async Task RecreateAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, long replicas, long surge, bool oldPodsRunning, CancellationToken cancellationToken)
    {
        foreach (var rs in old.Where(rs => SpecReplicas(rs) > 0))
        {
            await StepAsync(d, rs, 0, replicas, surge, cancellationToken).ConfigureAwait(false);
        }

        // Terminating pods count: no new pod starts while an old one may still run.
        if (!oldPodsRunning && old.All(rs => SpecReplicas(rs) == 0))
        {
            await StepAsync(d, newRs, replicas, replicas, surge, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// cleanupDeployment: at most spec.revisionHistoryLimit old ReplicaSets are kept; of the ones beyond it, oldest
    /// revision first, those that are empty (no pods, spec.replicas 0, their controller caught up) are deleted.
    /// </summary>
    private async Task CleanupAsync(JsonObject d, List<JsonObject> old, CancellationToken cancellationToken)
    {
        var limit = ControllerLoop.Long(d["spec"]?["revisionHistoryLimit"], 10);
        var alive = old.Where(rs => !Pods.IsTerminating(rs)).OrderBy(Revision).ToList();
        foreach (var rs in alive.Take((int)Math.Max(0, alive.Count - limit)))
        {
            if (SpecReplicas(rs) != 0 || StatusCount(rs, "replicas") != 0
                || ControllerLoop.Long(rs.Metadata()["generation"], 1) > StatusCount(rs, "observedGeneration"))
            {
                continue;
            }

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

    private async Task<DateTimeOffset?> WriteStatusAsync(JsonObject d, JsonObject? newRs, List<JsonObject> all, long replicas, long maxUnavailable, bool created, bool estimateProgress, CancellationToken cancellationToken)
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
        var paused = ControllerLoop.Bool(d["spec"]?["paused"]);
        if (deadline is not null)
        {
            // checkPausedConditions: pausing and resuming show as Progressing Unknown (a timeout already reported
            // stays), so that the deadline counts again from the moment of the resume.
            var reason = Progressing(status)?.Str("reason");
            if (paused && reason is not ("ProgressDeadlineExceeded" or "DeploymentPaused"))
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", nowText));
            }
            else if (!paused && reason == "DeploymentPaused")
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", nowText));
            }
        }

        if (deadline is { } limit && estimateProgress && newRs is not null)
        {
            next = EstimateProgress(d, status, previous, newRs, replicas, created, limit, now);
        }

        await ControllerLoop.WriteStatusAsync(writer.Store, Deployments, d, status, cancellationToken).ConfigureAwait(false);
        return next;
    }

    /// <summary>
    /// syncRolloutStatus: the Progressing condition of a rollout (complete, set created, progress since the last
    /// sync, or ProgressDeadlineExceeded once progressDeadlineSeconds pass after the last progress); returns when
    /// the deadline falls, if the rollout is still under way.
    /// </summary>
    private DateTimeOffset? EstimateProgress(JsonObject d, JsonObject status, JsonObject previous, JsonObject newRs, long replicas, bool created, long limit, DateTimeOffset now)
    {
        var nowText = ObjectMeta.Time(now);
        var rsName = newRs.Name();
        var current = Progressing(status);
        var total = ControllerLoop.Long(status["replicas"]);
        var updated = ControllerLoop.Long(status["updatedReplicas"]);
        var available = ControllerLoop.Long(status["availableReplicas"]);
        if (total == updated && current?.Str("reason") == "NewReplicaSetAvailable" && current.Str("message") == $"ReplicaSet \"{rsName}\" has successfully progressed.")
        {
            // A finished rollout being resynced (or scaled): nothing to estimate.
            return null;
        }

        // DeploymentProgressing: more updated, ready or available pods, or fewer old ones, than at the last sync.
        var progressed = updated > ControllerLoop.Long(previous["updatedReplicas"])
            || total - updated < ControllerLoop.Long(previous["replicas"]) - ControllerLoop.Long(previous["updatedReplicas"])
            || ControllerLoop.Long(status["readyReplicas"]) > ControllerLoop.Long(previous["readyReplicas"])
            || available > ControllerLoop.Long(previous["availableReplicas"]);
        if (updated == replicas && total == replicas && available == replicas)
        {
            ControllerLoop.SetCondition(status, Condition("Progressing", "True", "NewReplicaSetAvailable", $"ReplicaSet \"{rsName}\" has successfully progressed.", nowText), keepUpdateTime: true);
            return null;
        }

        if (created)
        {
            ControllerLoop.SetCondition(status, Condition("Progressing", "True", "NewReplicaSetCreated", $"Created new replica set \"{rsName}\"", nowText));
        }
        else if (current is null)
        {
            ControllerLoop.SetCondition(status, Condition("Progressing", "True", "FoundNewReplicaSet", $"Found new replica set \"{rsName}\"", nowText));
        }
        else if (progressed || current.Str("reason") == "NewReplicaSetAvailable")
        {
            ControllerLoop.SetCondition(status, Condition("Progressing", "True", "ReplicaSetUpdated", $"ReplicaSet \"{rsName}\" is progressing.", nowText));
        }
        else if (current.Str("reason") == "ProgressDeadlineExceeded")
        {
            return null;
        }
        else
        {
            var since = ObjectMeta.ParseTime(current.Str("lastUpdateTime")) ?? now;
            if (since.AddSeconds(limit) <= now)
            {
                ControllerLoop.SetCondition(status, Condition("Progressing", "False", "ProgressDeadlineExceeded", $"ReplicaSet \"{rsName}\" has timed out progressing.", nowText));
                LogDeadline(d.Namespace(), d.Name());
                return null;
            }

            return since.AddSeconds(limit);
        }

        return (ObjectMeta.ParseTime(Progressing(status)?.Str("lastUpdateTime")) ?? now).AddSeconds(limit);
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
