using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Runs Jobs to completion as kube-controller-manager's job controller: keeps up to spec.parallelism pods running
/// until spec.completions of them have succeeded (one per index from 0 to completions - 1 with
/// <c>completionMode: Indexed</c>), or fails the job once more than spec.backoffLimit pods failed (container
/// restarts count for restartPolicy OnFailure) or when it has been active for activeDeadlineSeconds. A failed pod's
/// successor waits the job controller's back-off: 10 s doubled per failure, at most 6 minutes. Suspended jobs run
/// nothing. A finished job with ttlSecondsAfterFinished is deleted that long after it finished (the
/// ttl-after-finished controller's work).
/// </summary>
/// <remarks>
/// Pods are counted with the <c>batch.kubernetes.io/job-tracking</c> finalizer, so that a pod deleted (or
/// garbage-collected, or its node gone) before the controller saw how it ended is still counted: a finished or
/// deleted pod's uid goes to status.uncountedTerminatedPods first, then its finalizer is removed, then it moves
/// to status.succeeded or status.failed. A pod deleted before it succeeded counts as failed. The terminal condition
/// (Complete, Failed) comes once nothing is left uncounted and no pod is still terminating, after the interim
/// SuccessCriteriaMet or FailureTarget condition, as Kubernetes 1.31 and later do.
/// </remarks>
public sealed partial class JobController(ObjectWriter writer, EventRecorder events, ILogger<JobController> logger)
{
    /// <summary>The finalizer that keeps a job's pod until the job controller has counted it.</summary>
    public const string TrackingFinalizer = "batch.kubernetes.io/job-tracking";

    /// <summary>Annotation and label carrying an Indexed job's pod's completion index.</summary>
    public const string CompletionIndexAnnotation = "batch.kubernetes.io/job-completion-index";

    /// <summary>The environment variable an Indexed job's containers read their index from.</summary>
    public const string CompletionIndexEnv = "JOB_COMPLETION_INDEX";

    /// <summary>At most this many uids wait in status.uncountedTerminatedPods (keeps the status small; the rest waits for the next sync).</summary>
    public const int MaxUncountedPods = 500;

    public static readonly TimeSpan BackoffBase = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan BackoffMax = TimeSpan.FromMinutes(6);

    public static readonly IReadOnlyList<string> Watches = ["jobs.batch", "pods"];

    private static readonly ApiResource Jobs = ApiResources.Find("batch", "v1", "jobs")!;
    private static readonly ApiResource PodResource = ApiResources.Find("", "v1", "pods")!;

    /// <summary>Per job uid, the latest failure counted (the job controller's back-off store): a counted pod may be gone by the next sync.</summary>
    private readonly Dictionary<string, DateTimeOffset> _lastFailure = new(StringComparer.Ordinal);

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken, ControllerLoop.OwnedOrFinalizing);

    /// <summary>One pass over every Job and the pods still carrying the tracking finalizer; returns when a back-off, deadline or TTL ends, if any.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var jobs = (await writer.Store.ListAsync(Jobs.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        // Only pods a job can own or track: this pass runs every resync period, and parsing every pod in the
        // cluster for it was a large part of the master's allocations at scale.
        var pods = (await writer.Store.ListAsync(PodResource.StoreName, null, OwnedOrTracked, cancellationToken).ConfigureAwait(false)).Items;
        var jobUids = jobs.Select(j => j.Uid()).ToHashSet(StringComparer.Ordinal);
        DateTimeOffset? next = null;
        foreach (var job in jobs)
        {
            var owned = pods.Where(p => p.Namespace() == job.Namespace() && Pods.ControllerUid(p) == job.Uid()).ToList();
            var at = await ControllerLoop.GuardAsync(() => SyncAsync(job, owned, cancellationToken), job, LogObjectFailed).ConfigureAwait(false);
            if (at is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        // syncOrphanPod: a tracked pod whose job is gone (deleted in the background, or the reference removed) is let go.
        foreach (var pod in pods.Where(p => HasFinalizer(p) && !(Pods.ControllerUid(p) is { } uid && jobUids.Contains(uid))))
        {
            var controller = (pod.Metadata()["ownerReferences"] as JsonArray)?.OfType<JsonObject>()
                .FirstOrDefault(r => ControllerLoop.Bool(r["controller"]));
            if (controller is null || (controller.Str("kind") == "Job" && controller.Str("apiVersion") == "batch/v1"))
            {
                await RemoveFinalizerAsync(pod, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var gone in _lastFailure.Keys.Where(uid => !jobUids.Contains(uid)).ToList())
        {
            _lastFailure.Remove(gone);
        }

        return next;
    }

    public static bool IsFinished(JsonObject job) =>
        (job["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>().Any(c => c.Str("type") is "Complete" or "Failed" && c.Str("status") == "True");

    private static readonly StoredJsonFilter OwnedOrTracked = StoredJson.Mentions("ownerReferences", TrackingFinalizer);

    public static bool HasFinalizer(JsonObject pod) => ObjectWriter.Finalizers(pod).Contains(TrackingFinalizer);

    /// <summary>isPodFailed: a pod that failed, or that is being deleted before it succeeded.</summary>
    public static bool IsPodFailed(JsonObject pod) => Pods.Phase(pod) == "Failed" || (Pods.IsTerminating(pod) && Pods.Phase(pod) != "Succeeded");

    /// <summary>An Indexed job's pod's completion index, or -1.</summary>
    public static int CompletionIndex(JsonObject pod) =>
        int.TryParse(pod.Metadata()["annotations"]?[CompletionIndexAnnotation]?.GetValue<string>(), NumberStyles.None, CultureInfo.InvariantCulture, out var ix) ? ix : -1;

    private async Task<DateTimeOffset?> SyncAsync(JsonObject job, List<JsonObject> owned, CancellationToken cancellationToken)
    {
        var now = writer.Time.GetUtcNow();
        if (IsFinished(job))
        {
            // updateJob's cleanupPodFinalizers: a finished job counted everything; anything still tracked is let go.
            foreach (var pod in owned.Where(HasFinalizer))
            {
                await RemoveFinalizerAsync(pod, cancellationToken).ConfigureAwait(false);
            }

            return await ExpireAsync(job, now, cancellationToken).ConfigureAwait(false);
        }

        var spec = job["spec"] as JsonObject ?? [];
        var ctx = new SyncContext(job, owned, (job["status"] as JsonObject)?.DeepClone().AsObject() ?? [], now);
        var completions = spec["completions"] is JsonValue cv && cv.TryGetValue<long>(out var c) ? c : (long?)null;
        var parallelism = ControllerLoop.Long(spec["parallelism"], 1);
        var backoffLimit = ControllerLoop.Long(spec["backoffLimit"], 6);
        var suspended = ControllerLoop.Bool(spec["suspend"]);
        DateTimeOffset? next = null;

        // What is finished and not counted yet: pods still tracked, not already in the uncounted lists.
        var newSucceeded = owned.Where(p => HasFinalizer(p) && !ctx.UncountedSucceeded.Contains(p.Uid()) && Pods.Phase(p) == "Succeeded").ToList();
        var newFailed = owned.Where(p => HasFinalizer(p) && !ctx.UncountedFailed.Contains(p.Uid()) && IsPodFailed(p)).ToList();
        if (ctx.Indexed)
        {
            ctx.PreviousIndexes = ParseIndexes(ctx.Status.Str("completedIndexes"), completions ?? 0);
            ctx.SucceededIndexes = [.. ctx.PreviousIndexes, .. owned.Where(p => Pods.Phase(p) == "Succeeded" && HasFinalizer(p)).Select(CompletionIndex).Where(ix => ix >= 0 && ix < completions)];
            ctx.Succeeded = ctx.SucceededIndexes.Count;
        }
        else
        {
            ctx.Succeeded = ControllerLoop.Long(ctx.Status["succeeded"]) + newSucceeded.Count + ctx.UncountedSucceeded.Count;
        }

        var failed = ControllerLoop.Long(ctx.Status["failed"]) + newFailed.Count + ctx.UncountedFailed.Count;
        foreach (var at in newFailed.Select(FailedAt))
        {
            if (!_lastFailure.TryGetValue(job.Uid(), out var last) || at > last)
            {
                _lastFailure[job.Uid()] = at;
            }
        }

        if (ctx.Status["startTime"] is null && !suspended)
        {
            ctx.Status["startTime"] = ObjectMeta.Time(now);
        }

        // The finishing condition: one an earlier sync decided (written as the interim condition), or one decided now.
        if (Pods.Condition(job, "SuccessCriteriaMet") is { } met && met.Str("status") == "True")
        {
            ctx.Finish = new Finish("SuccessCriteriaMet", met.Str("reason"), met.Str("message"));
        }
        else if (Pods.Condition(job, "FailureTarget") is { } target && target.Str("status") == "True")
        {
            ctx.Finish = new Finish("FailureTarget", target.Str("reason"), target.Str("message"));
        }
        else if (failed > backoffLimit || PastBackoffLimitOnFailure(spec, owned, backoffLimit))
        {
            ctx.Finish = new Finish("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
        }
        else if (spec["activeDeadlineSeconds"] is JsonValue ads && ads.TryGetValue<long>(out var deadline) && !suspended
            && ObjectMeta.ParseTime(ctx.Status.Str("startTime")) is { } start)
        {
            if (start.AddSeconds(deadline) <= now)
            {
                ctx.Finish = new Finish("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline");
            }
            else
            {
                next = start.AddSeconds(deadline);
            }
        }

        var active = owned.Where(Pods.IsActive).ToList();
        var activeCount = (long)active.Count;
        if (ctx.Finish is not null)
        {
            // deleteActivePods: the pods keep their finalizer, so a failing job counts them as failed.
            foreach (var pod in active)
            {
                if (await DeletePodAsync(job, pod, releaseFirst: false, cancellationToken).ConfigureAwait(false))
                {
                    activeCount--;
                    ctx.Terminating++;
                    ctx.DeletedReady += Pods.IsReady(pod) ? 1 : 0;
                }
            }
        }
        else
        {
            var managed = false;
            if (!Pods.IsTerminating(job))
            {
                (activeCount, var wake) = await ManageAsync(ctx, active, completions, parallelism, failed, suspended, cancellationToken).ConfigureAwait(false);
                next = Earliest(next, wake);
                managed = true;
            }

            var complete = completions is { } total ? ctx.Succeeded >= total && activeCount == 0 : ctx.Succeeded > 0 && activeCount == 0;
            if (complete)
            {
                ctx.Finish = new Finish("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods");
            }
            else if (managed)
            {
                await SuspendConditionAsync(ctx, suspended, cancellationToken).ConfigureAwait(false);
            }
        }

        ctx.Status["active"] = activeCount;
        ctx.Status["ready"] = active.Count(Pods.IsReady) - ctx.DeletedReady;
        ctx.Status["terminating"] = ctx.Terminating;
        await TrackAsync(ctx, completions, cancellationToken).ConfigureAwait(false);
        return IsFinished(job) ? Earliest(next, await ExpireAsync(job, writer.Time.GetUtcNow(), cancellationToken).ConfigureAwait(false)) : next;
    }

    /// <summary>manageJob: deletes pods beyond what is wanted, or creates the missing ones once the back-off allows; returns the active count and a wake-up.</summary>
    private async Task<(long Active, DateTimeOffset? Next)> ManageAsync(SyncContext ctx, List<JsonObject> active, long? completions, long parallelism, long failed, bool suspended, CancellationToken cancellationToken)
    {
        var job = ctx.Job;
        var count = (long)active.Count;
        if (suspended)
        {
            // Pods of a suspended job are released first: they are not failures.
            foreach (var pod in Pods.InDeletionOrder(active).ToList())
            {
                if (await DeletePodAsync(job, pod, releaseFirst: true, cancellationToken).ConfigureAwait(false))
                {
                    count--;
                    ctx.Terminating++;
                    ctx.DeletedReady += Pods.IsReady(pod) ? 1 : 0;
                }
            }

            return (count, null);
        }

        // Work queue jobs (no completions) stop starting pods once one has succeeded.
        var want = completions is { } n ? Math.Max(0, Math.Min(parallelism, n - ctx.Succeeded)) : ctx.Succeeded > 0 ? count : parallelism;
        var remove = ctx.Indexed ? SurplusIndexed(active, completions ?? 0) : [];
        var rest = Pods.InDeletionOrder(active.Except(remove)).ToList();
        remove.AddRange(rest.Take((int)Math.Max(0, count - want - remove.Count)));
        if (remove.Count > 0)
        {
            foreach (var pod in remove.Take(ReplicaSetController.BurstReplicas))
            {
                if (await DeletePodAsync(job, pod, releaseFirst: true, cancellationToken).ConfigureAwait(false))
                {
                    count--;
                    ctx.Terminating++;
                    ctx.DeletedReady += Pods.IsReady(pod) ? 1 : 0;
                }
            }

            return (count, null);
        }

        if (count >= want)
        {
            return (count, null);
        }

        var lastFailure = ctx.Owned.Where(p => Pods.Phase(p) == "Failed").Select(FailedAt).Append(_lastFailure.GetValueOrDefault(job.Uid())).Max();
        var wait = failed == 0 ? TimeSpan.Zero : Backoff(failed);
        if (failed > 0 && lastFailure + wait > ctx.Now)
        {
            return (count, lastFailure + wait);
        }

        var template = job["spec"]?["template"] as JsonObject ?? [];
        var indexes = ctx.Indexed ? PendingIndexes(ctx, active, completions ?? 0, (int)(want - count)) : null;
        var create = (int)Math.Min(want - count, ReplicaSetController.BurstReplicas);
        for (var i = 0; i < create; i++)
        {
            var pod = Pods.FromTemplate(job, template, job.Name() + "-");
            pod.Metadata()["finalizers"] = new JsonArray(TrackingFinalizer);
            if (indexes is not null)
            {
                if (i >= indexes.Count)
                {
                    break;
                }

                SetIndex(job, pod, indexes[i]);
            }

            try
            {
                var created = await writer.CreateAsync(PodResource, job.Namespace(), pod, cancellationToken).ConfigureAwait(false);
                count++;
                await events.RecordAsync(job, "Normal", "SuccessfulCreate", $"Created pod: {created.Name()}", "job-controller", cancellationToken).ConfigureAwait(false);
            }
            catch (ApiError e)
            {
                LogCreateFailed(job.Namespace(), job.Name(), e.Message);
                await events.RecordAsync(job, "Warning", "FailedCreate", $"Error creating: {e.Message}", "job-controller", cancellationToken).ConfigureAwait(false);
                break;
            }
        }

        return (count, null);
    }

    /// <summary>
    /// trackJobStatusAndRemoveFinalizers: finished (or, for a finishing or deleted job, any) tracked pods go to
    /// status.uncountedTerminatedPods, which is written first; then their finalizers are removed; then the ones
    /// released move to status.succeeded / failed, and the terminal condition is set once nothing is uncounted
    /// and no pod is terminating.
    /// </summary>
    private async Task TrackAsync(SyncContext ctx, long? completions, CancellationToken cancellationToken)
    {
        var job = ctx.Job;
        var status = ctx.Status;
        var withFinalizer = ctx.Owned.Where(HasFinalizer).Select(p => p.Uid()).ToHashSet(StringComparer.Ordinal);
        var flush = MoveCounted(ctx, withFinalizer);
        var release = new List<JsonObject>();
        var newIndexes = new List<int>();
        var failing = ctx.Finish is { Type: "FailureTarget" };
        var full = false;
        var pods = ctx.Indexed ? ctx.Owned.OrderBy(CompletionIndex).ToList() : ctx.Owned;
        foreach (var pod in pods.Where(HasFinalizer))
        {
            var uid = pod.Uid();
            var considerFailed = IsPodFailed(pod);
            if (!(Pods.IsTerminating(job) || ctx.Finish is not null || Pods.Phase(pod) == "Succeeded" || considerFailed))
            {
                continue;
            }

            release.Add(pod);
            var ix = CompletionIndex(pod);
            var validIndex = !ctx.Indexed || (ix >= 0 && ix < completions);
            if (Pods.Phase(pod) == "Succeeded" && !ctx.UncountedFailed.Contains(uid))
            {
                if (ctx.Indexed)
                {
                    if (validIndex && !ctx.PreviousIndexes.Contains(ix))
                    {
                        newIndexes.Add(ix);
                        flush = true;
                    }
                }
                else if (!ctx.UncountedSucceeded.Contains(uid))
                {
                    ctx.UncountedSucceeded.Add(uid);
                    flush = true;
                }
            }
            else if ((considerFailed || failing) && !ctx.UncountedFailed.Contains(uid) && validIndex)
            {
                // A failing job counts every pod it stops as failed.
                ctx.UncountedFailed.Add(uid);
                flush = true;
            }

            if (newIndexes.Count + ctx.UncountedSucceeded.Count + ctx.UncountedFailed.Count >= MaxUncountedPods)
            {
                full = true;
                break;
            }
        }

        if (ctx.Indexed)
        {
            var completed = FormatIndexes([.. ctx.PreviousIndexes, .. newIndexes]);
            if (completed != (status.Str("completedIndexes") ?? string.Empty))
            {
                flush = true;
            }

            SetOrRemove(status, "completedIndexes", completed.Length == 0 ? null : completed);
            status["succeeded"] = ctx.PreviousIndexes.Union(newIndexes).Count();
        }

        // The interim condition first, so the decision survives the pods it releases.
        Finish? terminal = null;
        if (ctx.Finish is { } finish)
        {
            flush |= EnsureCondition(status, finish.Type, "True", finish.Reason, finish.Message, ObjectMeta.Time(ctx.Now));
            terminal = finish.Type == "FailureTarget" ? finish with { Type = "Failed" } : finish with { Type = "Complete" };
        }

        WriteUncounted(ctx);
        if (flush && !await ControllerLoop.WriteStatusAsync(writer.Store, Jobs, job, status.DeepClone().AsObject(), cancellationToken).ConfigureAwait(false))
        {
            // The job changed meanwhile: nothing is released before its uids are recorded.
            return;
        }

        foreach (var pod in release)
        {
            if (await RemoveFinalizerAsync(pod, cancellationToken).ConfigureAwait(false))
            {
                withFinalizer.Remove(pod.Uid());
            }
        }

        MoveCounted(ctx, withFinalizer);
        var finished = !full && terminal is not null && ctx.UncountedSucceeded.Count + ctx.UncountedFailed.Count == 0 && ctx.Terminating == 0;
        if (finished)
        {
            var now = ObjectMeta.Time(ctx.Now);
            EnsureCondition(status, terminal!.Type, "True", terminal.Reason, terminal.Message, now);
            if (terminal.Type == "Complete")
            {
                status["completionTime"] = now;
            }
        }

        WriteUncounted(ctx);
        if (!await ControllerLoop.WriteStatusAsync(writer.Store, Jobs, job, status, cancellationToken).ConfigureAwait(false) || !finished)
        {
            return;
        }

        LogFinished(job.Namespace(), job.Name(), terminal!.Type, terminal.Reason ?? string.Empty);
        if (terminal.Type == "Complete")
        {
            await events.RecordAsync(job, "Normal", "Completed", "Job completed", "job-controller", cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await events.RecordAsync(job, "Warning", terminal.Reason ?? "Failed", terminal.Message ?? "Job failed", "job-controller", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>cleanUncountedPodsWithoutFinalizers: uncounted uids whose pod is released (or gone) move to the counts.</summary>
    private static bool MoveCounted(SyncContext ctx, HashSet<string> withFinalizer)
    {
        var changed = false;
        foreach (var (list, field) in new[] { (ctx.UncountedSucceeded, "succeeded"), (ctx.UncountedFailed, "failed") })
        {
            var released = list.Where(uid => !withFinalizer.Contains(uid)).ToList();
            if (released.Count == 0)
            {
                continue;
            }

            list.RemoveAll(released.Contains);
            if (!(ctx.Indexed && field == "succeeded"))
            {
                ctx.Status[field] = ControllerLoop.Long(ctx.Status[field]) + released.Count;
            }

            changed = true;
        }

        return changed;
    }

    private static void WriteUncounted(SyncContext ctx)
    {
        var uncounted = new JsonObject();
        if (ctx.UncountedSucceeded.Count > 0)
        {
            uncounted["succeeded"] = new JsonArray([.. ctx.UncountedSucceeded.Select(u => (JsonNode)u)]);
        }

        if (ctx.UncountedFailed.Count > 0)
        {
            uncounted["failed"] = new JsonArray([.. ctx.UncountedFailed.Select(u => (JsonNode)u)]);
        }

        ctx.Status["uncountedTerminatedPods"] = uncounted;
        foreach (var zero in new[] { "active", "succeeded", "failed" })
        {
            // Go's omitempty, as kube-apiserver serialises the status.
            if (ControllerLoop.Long(ctx.Status[zero]) == 0)
            {
                ctx.Status.Remove(zero);
            }
        }
    }

    /// <summary>Suspended True while suspended, False (JobResumed) once resumed, which restarts the active deadline's clock.</summary>
    private async Task SuspendConditionAsync(SyncContext ctx, bool suspended, CancellationToken cancellationToken)
    {
        var now = ObjectMeta.Time(ctx.Now);
        if (suspended && EnsureCondition(ctx.Status, "Suspended", "True", "JobSuspended", "Job suspended", now))
        {
            await events.RecordAsync(ctx.Job, "Normal", "Suspended", "Job suspended", "job-controller", cancellationToken).ConfigureAwait(false);
        }
        else if (!suspended && Pods.Condition(ctx.Job, "Suspended") is not null && EnsureCondition(ctx.Status, "Suspended", "False", "JobResumed", "Job resumed", now))
        {
            ctx.Status["startTime"] = now;
            await events.RecordAsync(ctx.Job, "Normal", "Resumed", "Job resumed", "job-controller", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>ensureJobConditionStatus: sets the condition when its status, reason or message differ; true when it changed.</summary>
    private static bool EnsureCondition(JsonObject status, string type, string value, string? reason, string? message, string now)
    {
        var existing = (status["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == type);
        if (existing is not null && existing.Str("status") == value && existing.Str("reason") == reason && existing.Str("message") == message)
        {
            return false;
        }

        if (existing is null && value == "False")
        {
            return false;
        }

        var condition = new JsonObject { ["type"] = type, ["status"] = value, ["lastProbeTime"] = now, ["lastTransitionTime"] = now };
        if (reason is not null)
        {
            condition["reason"] = reason;
            condition["message"] = message;
        }

        var conditions = status["conditions"] as JsonArray ?? [];
        if (existing is not null)
        {
            conditions[conditions.IndexOf(existing)] = condition;
        }
        else
        {
            conditions.Add(condition);
        }

        status["conditions"] = conditions;
        return true;
    }

    /// <summary>The ttl-after-finished controller: deletes a finished job (foreground, its pods first) ttlSecondsAfterFinished after it finished; returns when, if later.</summary>
    private async Task<DateTimeOffset?> ExpireAsync(JsonObject job, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (Pods.IsTerminating(job) || job["spec"]?["ttlSecondsAfterFinished"] is not JsonValue v || !v.TryGetValue<long>(out var ttl))
        {
            return null;
        }

        var finished = (job["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>()
            .Where(c => c.Str("type") is "Complete" or "Failed" && c.Str("status") == "True")
            .Select(c => ObjectMeta.ParseTime(c.Str("lastTransitionTime"))).FirstOrDefault() ?? now;
        var expires = finished.AddSeconds(ttl);
        if (expires > now)
        {
            return expires;
        }

        try
        {
            await writer.DeleteAsync(Jobs, job, null, "Foreground", cancellationToken).ConfigureAwait(false);
            LogExpired(job.Namespace(), job.Name(), ttl);
        }
        catch (ApiError)
        {
            // Gone or changed meanwhile: the next sync looks again.
        }

        return null;
    }

    /// <summary>Deletes one of the job's pods; <paramref name="releaseFirst"/> removes its tracking finalizer first (deleteJobPods), so it is not counted.</summary>
    private async Task<bool> DeletePodAsync(JsonObject job, JsonObject pod, bool releaseFirst, CancellationToken cancellationToken)
    {
        if (releaseFirst && HasFinalizer(pod) && !await RemoveFinalizerAsync(pod, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        try
        {
            var current = await writer.Store.GetAsync(new ObjectKey(PodResource.StoreName, pod.Namespace(), pod.Name()), cancellationToken).ConfigureAwait(false);
            if (current is null || current.Uid() != pod.Uid())
            {
                return true;
            }

            await writer.DeleteAsync(PodResource, current, null, null, cancellationToken).ConfigureAwait(false);
            await events.RecordAsync(job, "Normal", "SuccessfulDelete", $"Deleted pod: {pod.Name()}", "job-controller", cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ApiError)
        {
            return false;
        }
    }

    /// <summary>Removes the tracking finalizer (and the pod, if that was all that held it); true when the pod no longer carries it.</summary>
    private async Task<bool> RemoveFinalizerAsync(JsonObject pod, CancellationToken cancellationToken)
    {
        var key = new ObjectKey(PodResource.StoreName, pod.Namespace(), pod.Name());
        var current = pod;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (current.Uid() != pod.Uid() || !HasFinalizer(current))
            {
                return true;
            }

            var left = ObjectWriter.Finalizers(current).Where(f => f != TrackingFinalizer).ToList();
            if (left.Count == 0)
            {
                current.Metadata().Remove("finalizers");
            }
            else
            {
                current.Metadata()["finalizers"] = new JsonArray([.. left.Select(f => (JsonNode)f)]);
            }

            try
            {
                var stored = await writer.Store.UpdateAsync(key, current, current.ResourceVersion(), cancellationToken).ConfigureAwait(false);
                await writer.RemoveIfReleasedAsync(key, stored, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.NotFound)
            {
                return true;
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Conflict)
            {
                // The node reported meanwhile: take the current version.
                if (await writer.Store.GetAsync(key, cancellationToken).ConfigureAwait(false) is not { } fresh)
                {
                    return true;
                }

                current = fresh;
            }
        }

        return false;
    }

    /// <summary>pastBackoffLimitOnFailure: with restartPolicy OnFailure, the running pods' container restarts reach backoffLimit.</summary>
    private static bool PastBackoffLimitOnFailure(JsonObject spec, List<JsonObject> pods, long backoffLimit)
    {
        if (spec["template"]?["spec"]?["restartPolicy"]?.GetValue<string>() != "OnFailure")
        {
            return false;
        }

        var restarts = pods.Where(p => Pods.Phase(p) is "Running" or "Pending").Sum(p => Pods.RestartCount(p)
            + (p["status"]?["initContainerStatuses"] as JsonArray ?? []).OfType<JsonObject>().Sum(s => s["restartCount"]?.GetValue<int>() ?? 0));
        return backoffLimit == 0 ? restarts > 0 : restarts >= backoffLimit;
    }

    /// <summary>The back-off before the next pod after <paramref name="failures"/> failures: 10 s, 20 s, 40 s, ... at most 6 minutes.</summary>
    public static TimeSpan Backoff(long failures)
    {
        if (failures <= 0)
        {
            return TimeSpan.Zero;
        }

        var wait = BackoffBase * Math.Pow(2, Math.Min(failures - 1, 20));
        return wait > BackoffMax ? BackoffMax : wait;
    }

    /// <summary>getFinishedTime: when a failed pod ended (its containers' end, its readiness lost, its deletion asked), at worst when it was made.</summary>
    private static DateTimeOffset FailedAt(JsonObject pod)
    {
        var finished = (pod["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>()
            .Select(c => ObjectMeta.ParseTime(c["state"]?["terminated"]?["finishedAt"]?.GetValue<string>()))
            .Where(t => t is not null).Max();
        if (finished is { } t)
        {
            return t;
        }

        if (Pods.Condition(pod, "Ready") is { } ready && ready.Str("status") == "False" && ObjectMeta.ParseTime(ready.Str("lastTransitionTime")) is { } unready)
        {
            return unready;
        }

        if (ObjectMeta.ParseTime(pod.Metadata().Str("deletionTimestamp")) is { } deletion)
        {
            return deletion.AddSeconds(-ControllerLoop.Long(pod.Metadata()["deletionGracePeriodSeconds"]));
        }

        return ObjectMeta.ParseTime(pod.Metadata().Str("creationTimestamp")) ?? DateTimeOffset.MinValue;
    }

    /// <summary>An Indexed job's active pods that must go whatever the count: no valid index, or another pod holds the same one.</summary>
    private static List<JsonObject> SurplusIndexed(List<JsonObject> active, long completions)
    {
        var surplus = active.Where(p => CompletionIndex(p) is var ix && (ix < 0 || ix >= completions)).ToList();
        foreach (var group in active.Except(surplus).GroupBy(CompletionIndex).Where(g => g.Count() > 1))
        {
            // Keep the one that would be deleted last.
            surplus.AddRange(Pods.InDeletionOrder(group).SkipLast(1));
        }

        return surplus;
    }

    /// <summary>firstPendingIndexes: the lowest indexes neither succeeded nor held by an active pod.</summary>
    private static List<int> PendingIndexes(SyncContext ctx, List<JsonObject> active, long completions, int count)
    {
        var taken = active.Select(CompletionIndex).ToHashSet();
        var pending = new List<int>();
        for (var ix = 0; ix < completions && pending.Count < count; ix++)
        {
            if (!ctx.SucceededIndexes.Contains(ix) && !taken.Contains(ix))
            {
                pending.Add(ix);
            }
        }

        return pending;
    }

    /// <summary>What the job controller puts on an Indexed job's pod: the index as annotation, label and JOB_COMPLETION_INDEX, the hostname and name prefix.</summary>
    private static void SetIndex(JsonObject job, JsonObject pod, int index)
    {
        var text = index.ToString(CultureInfo.InvariantCulture);
        pod.Metadata().Obj("annotations")[CompletionIndexAnnotation] = text;
        pod.Metadata().Obj("labels")[CompletionIndexAnnotation] = text;
        pod.Metadata()["generateName"] = $"{job.Name()}-{text}-";
        var spec = pod.Obj("spec");
        spec["hostname"] = $"{job.Name()}-{text}";
        foreach (var list in new[] { "initContainers", "containers" })
        {
            foreach (var container in (spec[list] as JsonArray ?? []).OfType<JsonObject>())
            {
                var env = container["env"] as JsonArray ?? [];
                if (env.OfType<JsonObject>().Any(e => e.Str("name") == CompletionIndexEnv))
                {
                    continue;
                }

                env.Add(new JsonObject
                {
                    ["name"] = CompletionIndexEnv,
                    ["valueFrom"] = new JsonObject { ["fieldRef"] = new JsonObject { ["apiVersion"] = "v1", ["fieldPath"] = $"metadata.annotations['{CompletionIndexAnnotation}']" } },
                });
                container["env"] = env;
            }
        }
    }

    /// <summary>status.completedIndexes ("1,3-5") as a set; parts out of range or unreadable are left out.</summary>
    public static SortedSet<int> ParseIndexes(string? text, long completions)
    {
        var set = new SortedSet<int>();
        foreach (var part in (text ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var bounds = part.Split('-', 2);
            if (!int.TryParse(bounds[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first))
            {
                continue;
            }

            var last = first;
            if (bounds.Length == 2 && !int.TryParse(bounds[1], NumberStyles.None, CultureInfo.InvariantCulture, out last))
            {
                continue;
            }

            for (var ix = first; ix <= last && ix < completions; ix++)
            {
                set.Add(ix);
            }
        }

        return set;
    }

    /// <summary>A set of indexes as status.completedIndexes writes it: ascending, runs of three or more as ranges ("0,2-4,7").</summary>
    public static string FormatIndexes(IEnumerable<int> indexes)
    {
        var sorted = indexes.Distinct().Order().ToList();
        var text = new StringBuilder();
        for (var i = 0; i < sorted.Count;)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            if (text.Length > 0)
            {
                text.Append(',');
            }

            text.Append(sorted[i].ToString(CultureInfo.InvariantCulture));
            if (j > i)
            {
                text.Append(j == i + 1 ? ',' : '-').Append(sorted[j].ToString(CultureInfo.InvariantCulture));
            }

            i = j + 1;
        }

        return text.ToString();
    }

    private static void SetOrRemove(JsonObject obj, string field, string? value)
    {
        if (value is null)
        {
            obj.Remove(field);
        }
        else
        {
            obj[field] = value;
        }
    }

    private static DateTimeOffset? Earliest(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a < b ? a : b;

    /// <summary>A finishing condition: the interim type (SuccessCriteriaMet or FailureTarget) with its reason and message.</summary>
    private sealed record Finish(string Type, string? Reason, string? Message);

    /// <summary>One job's sync (syncJobCtx).</summary>
    private sealed class SyncContext(JsonObject job, List<JsonObject> owned, JsonObject status, DateTimeOffset now)
    {
        public JsonObject Job { get; } = job;

        public List<JsonObject> Owned { get; } = owned;

        /// <summary>The status being written; the job keeps the one read.</summary>
        public JsonObject Status { get; } = status;

        public DateTimeOffset Now { get; } = now;

        public bool Indexed { get; } = job["spec"]?["completionMode"]?.GetValue<string>() == "Indexed";

        public List<string> UncountedSucceeded { get; } = Uids(status, "succeeded");

        public List<string> UncountedFailed { get; } = Uids(status, "failed");

        public long Succeeded { get; set; }

        public SortedSet<int> PreviousIndexes { get; set; } = [];

        public SortedSet<int> SucceededIndexes { get; set; } = [];

        public Finish? Finish { get; set; }

        /// <summary>Pods being deleted that have not ended (they hold the terminal condition back).</summary>
        public long Terminating { get; set; } = owned.Count(p => Pods.IsTerminating(p) && Pods.Phase(p) is not ("Succeeded" or "Failed"));

        public int DeletedReady { get; set; }

        private static List<string> Uids(JsonObject status, string field) =>
            (status["uncountedTerminatedPods"]?[field] as JsonArray ?? []).OfType<JsonValue>()
                .Select(v => v.TryGetValue<string>(out var s) ? s : null).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
    }

    [LoggerMessage(EventId = 5330, Level = LogLevel.Warning, Message = "Job {Namespace}/{Name} cannot create a pod: {Error}")]
    private partial void LogCreateFailed(string @namespace, string name, string error);

    [LoggerMessage(EventId = 5331, Level = LogLevel.Information, Message = "Job {Namespace}/{Name} finished: {Type} {Reason}")]
    private partial void LogFinished(string @namespace, string name, string type, string reason);

    [LoggerMessage(EventId = 5332, Level = LogLevel.Warning, Message = "Job sync failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 5333, Level = LogLevel.Warning, Message = "Job {Object} skipped: {Error}")]
    private partial void LogObjectFailed(string @object, string error);

    [LoggerMessage(EventId = 5334, Level = LogLevel.Information, Message = "Deleting job {Namespace}/{Name}: finished {Ttl} s ago (ttlSecondsAfterFinished)")]
    private partial void LogExpired(string @namespace, string name, long ttl);
}
