using System.Globalization;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// kube-apiserver's printPod: NAME, READY, STATUS, RESTARTS, AGE and, wide, IP, NODE, NOMINATED NODE,
/// READINESS GATES. STATUS is the one-word summary kubectl users read first, so its precedence rules
/// (init containers, then the last container with a reason, then deletion) follow upstream exactly.
/// </summary>
internal sealed class PodPrinter : ITablePrinter
{
    // The reason the node lifecycle controller sets on pods of an unreachable node (pkg/util/node).
    private const string NodeUnreachablePodReason = "NodeLost";

    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Ready", ColumnDocs.PodReady),
        TableColumn.Str("Status", ColumnDocs.PodStatus),
        TableColumn.Str("Restarts", ColumnDocs.PodRestarts),
        TableColumn.AgeColumn,
        TableColumn.Str("IP", ColumnDocs.PodIP, priority: 1),
        TableColumn.Str("Node", ColumnDocs.PodNodeName, priority: 1),
        TableColumn.Str("Nominated Node", ColumnDocs.PodNominatedNodeName, priority: 1),
        TableColumn.Str("Readiness Gates", ColumnDocs.PodReadinessGates, priority: 1),
    ];

    public JsonArray Cells(JsonObject pod, DateTimeOffset now)
    {
        var summary = Summarize(pod);
        var restarts = summary.Restarts.ToString(CultureInfo.InvariantCulture);
        if (summary.Restarts != 0 && summary.LastRestart is { } last)
        {
            restarts = $"{restarts} ({HumanDuration.Since(last, now)} ago)";
        }

        return
        [
            JsonRead.String(pod, "metadata", "name"),
            $"{summary.Ready}/{summary.Total}",
            summary.Status,
            restarts,
            HumanDuration.Since(JsonRead.Time(pod, "metadata", "creationTimestamp"), now),
            OrNone(PodIP(pod)),
            OrNone(JsonRead.String(pod, "spec", "nodeName")),
            OrNone(JsonRead.String(pod, "status", "nominatedNodeName")),
            ReadinessGates(pod),
        ];
    }

    public JsonArray? Conditions(JsonObject pod) => JsonRead.String(pod, "status", "phase") switch
    {
        "Succeeded" => [Completed("Succeeded", "The pod has completed successfully.")],
        "Failed" => [Completed("Failed", "The pod failed.")],
        _ => null,
    };

    /// <summary>READY counts, STATUS and RESTARTS as printPod computes them.</summary>
    internal static PodSummary Summarize(JsonObject pod)
    {
        var status = JsonRead.Object(pod, "status");
        var phase = JsonRead.String(status, "phase");
        var reason = JsonRead.String(status, "reason") is { Length: > 0 } statusReason ? statusReason : phase;

        foreach (var condition in JsonRead.Objects(status, "conditions"))
        {
            if (JsonRead.String(condition, "type") == "PodScheduled" && JsonRead.String(condition, "reason") == "SchedulingGated")
            {
                reason = "SchedulingGated";
            }
        }

        var initSpecs = JsonRead.Objects(pod, "spec", "initContainers").ToList();

        // Sidecars (init containers with restartPolicy Always) keep running, so they count as containers.
        var sidecars = initSpecs
            .Where(c => JsonRead.String(c, "restartPolicy") == "Always")
            .Select(c => JsonRead.String(c, "name"))
            .ToHashSet(StringComparer.Ordinal);
        var total = JsonRead.Objects(pod, "spec", "containers").Count()
            + initSpecs.Count(c => JsonRead.String(c, "restartPolicy") == "Always");

        long restarts = 0;
        long sidecarRestarts = 0;
        var ready = 0;
        DateTimeOffset? lastRestart = null;
        DateTimeOffset? lastSidecarRestart = null;

        var initializing = false;
        var initStatuses = JsonRead.Objects(status, "initContainerStatuses").ToList();
        for (var i = 0; i < initStatuses.Count; i++)
        {
            var container = initStatuses[i];
            var restartCount = JsonRead.Int(container, "restartCount");
            var finishedAt = JsonRead.Time(container, "lastState", "terminated", "finishedAt");
            restarts += restartCount;
            lastRestart = Later(lastRestart, finishedAt);

            var isSidecar = sidecars.Contains(JsonRead.String(container, "name"));
            if (isSidecar)
            {
                sidecarRestarts += restartCount;
                lastSidecarRestart = Later(lastSidecarRestart, finishedAt);
            }

            var terminated = JsonRead.Object(container, "state", "terminated");
            var waitingReason = JsonRead.String(container, "state", "waiting", "reason");
            if (terminated is not null && JsonRead.Int(terminated, "exitCode") == 0)
            {
                continue;
            }

            if (isSidecar && JsonRead.Bool(container, "started"))
            {
                if (JsonRead.Bool(container, "ready"))
                {
                    ready++;
                }

                continue;
            }

            if (terminated is not null)
            {
                reason = "Init:" + TerminatedReason(terminated);
            }
            else if (waitingReason.Length > 0 && waitingReason != "PodInitializing")
            {
                reason = "Init:" + waitingReason;
            }
            else
            {
                reason = string.Create(CultureInfo.InvariantCulture, $"Init:{i}/{initSpecs.Count}");
            }

            initializing = true;
            break;
        }

        if (!initializing || IsConditionTrue(status, "Initialized"))
        {
            // Finished init containers no longer count: only sidecar restarts carry over.
            restarts = sidecarRestarts;
            lastRestart = lastSidecarRestart;
            var hasRunning = false;
            var statuses = JsonRead.Objects(status, "containerStatuses").ToList();

            // Backwards, so the first container with something to say has the last word.
            for (var i = statuses.Count - 1; i >= 0; i--)
            {
                var container = statuses[i];
                restarts += JsonRead.Int(container, "restartCount");
                lastRestart = Later(lastRestart, JsonRead.Time(container, "lastState", "terminated", "finishedAt"));

                var waitingReason = JsonRead.String(container, "state", "waiting", "reason");
                var terminated = JsonRead.Object(container, "state", "terminated");
                if (waitingReason.Length > 0)
                {
                    reason = waitingReason;
                }
                else if (terminated is not null)
                {
                    reason = TerminatedReason(terminated);
                }
                else if (JsonRead.Bool(container, "ready") && JsonRead.Object(container, "state", "running") is not null)
                {
                    hasRunning = true;
                    ready++;
                }
            }

            if (reason == "Completed" && hasRunning)
            {
                reason = IsConditionTrue(status, "Ready") ? "Running" : "NotReady";
            }
        }

        if (JsonRead.Has(pod, "metadata", "deletionTimestamp"))
        {
            if (JsonRead.String(status, "reason") == NodeUnreachablePodReason)
            {
                reason = "Unknown";
            }
            else if (phase is not ("Failed" or "Succeeded"))
            {
                reason = "Terminating";
            }
        }

        return new PodSummary(ready, total, reason, restarts, lastRestart);
    }

    private static string TerminatedReason(JsonObject terminated)
    {
        var reason = JsonRead.String(terminated, "reason");
        if (reason.Length > 0)
        {
            return reason;
        }

        var signal = JsonRead.Int(terminated, "signal");
        return signal != 0
            ? string.Create(CultureInfo.InvariantCulture, $"Signal:{signal}")
            : string.Create(CultureInfo.InvariantCulture, $"ExitCode:{JsonRead.Int(terminated, "exitCode")}");
    }

    private static bool IsConditionTrue(JsonObject? status, string type)
    {
        // The first condition of the type decides, as upstream's loops do.
        foreach (var condition in JsonRead.Objects(status, "conditions"))
        {
            if (JsonRead.String(condition, "type") == type)
            {
                return JsonRead.String(condition, "status") == "True";
            }
        }

        return false;
    }

    private static DateTimeOffset? Later(DateTimeOffset? current, DateTimeOffset? candidate) =>
        candidate is { } c && (current is not { } cur || cur < c) ? c : current;

    private static string PodIP(JsonObject pod)
    {
        // The internal API takes status.podIP as authoritative and falls back to podIPs[0].
        var podIP = JsonRead.String(pod, "status", "podIP");
        return podIP.Length > 0
            ? podIP
            : JsonRead.Objects(pod, "status", "podIPs").Select(ip => JsonRead.String(ip, "ip")).FirstOrDefault() ?? "";
    }

    private static string ReadinessGates(JsonObject pod)
    {
        var gates = JsonRead.Objects(pod, "spec", "readinessGates").ToList();
        if (gates.Count == 0)
        {
            return "<none>";
        }

        var conditions = JsonRead.Objects(pod, "status", "conditions").ToList();
        var trueConditions = gates.Count(gate =>
        {
            var type = JsonRead.String(gate, "conditionType");
            var condition = conditions.FirstOrDefault(c => JsonRead.String(c, "type") == type);
            return condition is not null && JsonRead.String(condition, "status") == "True";
        });
        return string.Create(CultureInfo.InvariantCulture, $"{trueConditions}/{gates.Count}");
    }

    private static JsonObject Completed(string reason, string message) => new()
    {
        ["type"] = "Completed",
        ["status"] = "True",
        ["reason"] = reason,
        ["message"] = message,
    };

    private static string OrNone(string value) => value.Length > 0 ? value : "<none>";
}

/// <summary>What printPod derives from a pod's status: READY as <see cref="Ready"/>/<see cref="Total"/>, STATUS, and RESTARTS with the time of the last one.</summary>
internal readonly record struct PodSummary(int Ready, int Total, string Status, long Restarts, DateTimeOffset? LastRestart);
