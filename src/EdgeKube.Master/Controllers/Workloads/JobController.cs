using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Runs Jobs to completion: keeps up to spec.parallelism pods running until spec.completions of them have
/// succeeded (Complete), or fails the job (Failed, BackoffLimitExceeded) once more than spec.backoffLimit
/// pods failed (container restarts count for restartPolicy OnFailure), or when it has been active longer than
/// activeDeadlineSeconds (DeadlineExceeded). A failed pod's successor waits the job controller's back-off:
/// 10 s doubled per failure, at most 6 minutes.
/// </summary>
/// <remarks>
/// Succeeded and failed counts come from the job's finished pods, and never go down: a finished pod that is
/// deleted stays counted. (kube-controller-manager tracks that with a pod finalizer; EdgeKube's pods are
/// removed by their node, so the count is kept in status only.)
/// </remarks>
public sealed partial class JobController(ObjectWriter writer, EventRecorder events, ILogger<JobController> logger)
{
    public static readonly TimeSpan BackoffBase = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan BackoffMax = TimeSpan.FromMinutes(6);

    public static readonly IReadOnlyList<string> Watches = ["jobs.batch", "pods"];

    private static readonly ApiResource Jobs = ApiResources.Find("batch", "v1", "jobs")!;
    private static readonly ApiResource PodResource = ApiResources.Find("", "v1", "pods")!;

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken);

    /// <summary>One pass over every Job; returns when a back-off or deadline ends, if any.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var jobs = (await writer.Store.ListAsync(Jobs.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        if (jobs.Count == 0)
        {
            return null;
        }

        var pods = (await writer.Store.ListAsync(PodResource.StoreName, null, cancellationToken).ConfigureAwait(false)).Items;
        DateTimeOffset? next = null;
        foreach (var job in jobs)
        {
            if (Pods.IsTerminating(job))
            {
                continue;
            }

            var owned = pods.Where(p => p.Namespace() == job.Namespace() && Pods.ControllerUid(p) == job.Uid()).ToList();
            var at = await ControllerLoop.GuardAsync(() => SyncAsync(job, owned, cancellationToken), job, LogObjectFailed).ConfigureAwait(false);
            if (at is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        return next;
    }

    public static bool IsFinished(JsonObject job) =>
        (job["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>().Any(c => c.Str("type") is "Complete" or "Failed" && c.Str("status") == "True");

    private async Task<DateTimeOffset?> SyncAsync(JsonObject job, List<JsonObject> owned, CancellationToken cancellationToken)
    {
        var now = writer.Time.GetUtcNow();
        var nowText = ObjectMeta.Time(now);
        var spec = job["spec"] as JsonObject ?? [];
        var status = (job["status"] as JsonObject)?.DeepClone().AsObject() ?? [];
        var active = owned.Where(Pods.IsActive).ToList();
        var finished = IsFinished(job);
        var suspended = ControllerLoop.Bool(spec["suspend"]);

        var succeeded = Math.Max(ControllerLoop.Long(status["succeeded"]), owned.Count(p => Pods.Phase(p) == "Succeeded"));
        var failed = Math.Max(ControllerLoop.Long(status["failed"]), owned.Count(p => Pods.Phase(p) == "Failed"));
        var restarts = spec["template"]?["spec"]?["restartPolicy"]?.GetValue<string>() == "OnFailure" ? active.Sum(Pods.RestartCount) : 0;
        var completions = spec["completions"] is JsonValue cv && cv.TryGetValue<long>(out var c) ? c : (long?)null;
        var parallelism = ControllerLoop.Long(spec["parallelism"], 1);
        var backoffLimit = ControllerLoop.Long(spec["backoffLimit"], 6);
        DateTimeOffset? next = null;

        if (!finished && !suspended)
        {
            status["startTime"] ??= nowText;
        }

        if (suspended && !finished)
        {
            ControllerLoop.SetCondition(status, new JsonObject { ["type"] = "Suspended", ["status"] = "True", ["lastProbeTime"] = nowText, ["lastTransitionTime"] = nowText, ["reason"] = "JobSuspended", ["message"] = "Job suspended" });
        }
        else if (Pods.Condition(job, "Suspended")?.Str("status") == "True")
        {
            ControllerLoop.SetCondition(status, new JsonObject { ["type"] = "Suspended", ["status"] = "False", ["lastProbeTime"] = nowText, ["lastTransitionTime"] = nowText, ["reason"] = "JobResumed", ["message"] = "Job resumed" });
        }

        if (finished || suspended)
        {
            // A finished or suspended job runs nothing.
            await DeleteAllAsync(job, active, cancellationToken).ConfigureAwait(false);
            active.Clear();
        }
        else if (failed + restarts > backoffLimit)
        {
            await FinishAsync(job, status, active, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", nowText, cancellationToken).ConfigureAwait(false);
            active.Clear();
        }
        else if (spec["activeDeadlineSeconds"] is JsonValue ads && ads.TryGetValue<long>(out var deadline)
            && ObjectMeta.ParseTime(status.Str("startTime")) is { } start && start.AddSeconds(deadline) <= now)
        {
            await FinishAsync(job, status, active, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline", nowText, cancellationToken).ConfigureAwait(false);
            active.Clear();
        }
        else if (completions is { } total ? succeeded >= total : succeeded > 0 && active.Count == 0)
        {
            status["completionTime"] = nowText;
            await FinishAsync(job, status, active, "Complete", null, null, nowText, cancellationToken).ConfigureAwait(false);
            active.Clear();
        }
        else
        {
            // Work queue jobs (no completions) stop starting pods once one has succeeded.
            var want = completions is { } n ? Math.Min(parallelism, n - succeeded) : succeeded > 0 ? active.Count : parallelism;
            if (active.Count > want)
            {
                await DeleteAllAsync(job, Pods.InDeletionOrder(active).Take((int)(active.Count - want)).ToList(), cancellationToken).ConfigureAwait(false);
            }
            else if (active.Count < want)
            {
                var lastFailure = owned.Where(p => Pods.Phase(p) == "Failed").Select(FinishedAt).Where(t => t is not null).Max();
                var wait = failed == 0 ? TimeSpan.Zero : Backoff(failed);
                if (lastFailure is { } lf && lf + wait > now)
                {
                    next = lf + wait;
                }
                else
                {
                    var template = spec["template"] as JsonObject ?? [];
                    for (var i = active.Count; i < want; i++)
                    {
                        try
                        {
                            var created = await writer.CreateAsync(PodResource, job.Namespace(), Pods.FromTemplate(job, template, job.Name() + "-"), cancellationToken).ConfigureAwait(false);
                            await events.RecordAsync(job, "Normal", "SuccessfulCreate", $"Created pod: {created.Name()}", "job-controller", cancellationToken).ConfigureAwait(false);
                        }
                        catch (ApiError e)
                        {
                            LogCreateFailed(job.Namespace(), job.Name(), e.Message);
                            await events.RecordAsync(job, "Warning", "FailedCreate", $"Error creating: {e.Message}", "job-controller", cancellationToken).ConfigureAwait(false);
                            break;
                        }
                    }
                }
            }

            if (spec["activeDeadlineSeconds"] is JsonValue d2 && d2.TryGetValue<long>(out var seconds) && ObjectMeta.ParseTime(status.Str("startTime")) is { } started)
            {
                var end = started.AddSeconds(seconds);
                next = next is null || end < next ? end : next;
            }
        }

        status["active"] = active.Count;
        status["ready"] = active.Count(Pods.IsReady);
        status["succeeded"] = succeeded;
        status["failed"] = failed;
        status["terminating"] = owned.Count(Pods.IsTerminating);
        status["uncountedTerminatedPods"] ??= new JsonObject();
        foreach (var zero in new[] { "active", "succeeded", "failed" })
        {
            if (ControllerLoop.Long(status[zero]) == 0)
            {
                status.Remove(zero);
            }
        }

        await ControllerLoop.WriteStatusAsync(writer.Store, Jobs, job, status, cancellationToken).ConfigureAwait(false);
        return next;
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

    private static DateTimeOffset? FinishedAt(JsonObject pod) =>
        (pod["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>()
            .Select(c => ObjectMeta.ParseTime(c["state"]?["terminated"]?["finishedAt"]?.GetValue<string>()))
            .Where(t => t is not null).Max()
        ?? ObjectMeta.ParseTime(Pods.Condition(pod, "Ready")?.Str("lastTransitionTime"));

    private async Task FinishAsync(JsonObject job, JsonObject status, List<JsonObject> active, string type, string? reason, string? message, string now, CancellationToken cancellationToken)
    {
        var condition = new JsonObject
        {
            ["type"] = type,
            ["status"] = "True",
            ["lastProbeTime"] = now,
            ["lastTransitionTime"] = now,
        };
        if (reason is not null)
        {
            condition["reason"] = reason;
            condition["message"] = message;
        }

        ControllerLoop.SetCondition(status, condition);
        await DeleteAllAsync(job, active, cancellationToken).ConfigureAwait(false);
        LogFinished(job.Namespace(), job.Name(), type, reason ?? string.Empty);
        if (type == "Complete")
        {
            await events.RecordAsync(job, "Normal", "Completed", "Job completed", "job-controller", cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await events.RecordAsync(job, "Warning", reason ?? type, message ?? type, "job-controller", cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DeleteAllAsync(JsonObject job, List<JsonObject> pods, CancellationToken cancellationToken)
    {
        foreach (var pod in pods)
        {
            try
            {
                await writer.DeleteAsync(PodResource, pod, null, null, cancellationToken).ConfigureAwait(false);
                await events.RecordAsync(job, "Normal", "SuccessfulDelete", $"Deleted pod: {pod.Name()}", "job-controller", cancellationToken).ConfigureAwait(false);
            }
            catch (ApiError)
            {
            }
        }
    }

    [LoggerMessage(EventId = 5330, Level = LogLevel.Warning, Message = "Job {Namespace}/{Name} cannot create a pod: {Error}")]
    private partial void LogCreateFailed(string @namespace, string name, string error);

    [LoggerMessage(EventId = 5331, Level = LogLevel.Information, Message = "Job {Namespace}/{Name} finished: {Type} {Reason}")]
    private partial void LogFinished(string @namespace, string name, string type, string reason);

    [LoggerMessage(EventId = 5332, Level = LogLevel.Warning, Message = "Job sync failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 5333, Level = LogLevel.Warning, Message = "Job {Object} skipped: {Error}")]
    private partial void LogObjectFailed(string @object, string error);
}
