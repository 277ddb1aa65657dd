using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using k8s.Models;

namespace EdgeKube.Agent.Status;

/// <summary>Why a container is waiting, as the pod worker last saw it (ErrImagePull, CrashLoopBackOff...).</summary>
public sealed record ContainerWaiting(string Reason, string Message);

/// <summary>What the pod worker knows beyond the runtime's view, handed to the status computation.</summary>
public sealed record PodSyncNotes
{
    /// <summary>Waiting reasons by container name, for containers that are not running.</summary>
    public IReadOnlyDictionary<string, ContainerWaiting> Waiting { get; init; } = new Dictionary<string, ContainerWaiting>();

    /// <summary>Readiness probe results by container name (absent: no readiness probe, or no result yet).</summary>
    public IReadOnlyDictionary<string, bool> Ready { get; init; } = new Dictionary<string, bool>();

    /// <summary>Startup probe results by container name (absent: no startup probe, or no result yet).</summary>
    public IReadOnlyDictionary<string, bool> Started { get; init; } = new Dictionary<string, bool>();

    /// <summary>When the agent first accepted the pod.</summary>
    public DateTimeOffset? StartTime { get; init; }

    /// <summary>A pod-level failure (invalid spec), reported as phase Failed with this reason and message.</summary>
    public ContainerWaiting? PodFailure { get; init; }

    /// <summary>The pod is terminating: it has been removed and its containers are being stopped.</summary>
    public bool Terminating { get; init; }
}

/// <summary>
/// Pure: computes a v1 PodStatus from the desired pod, what the runtime holds and the worker's notes,
/// following kubelet's generateAPIPodStatus and getPhase.
/// </summary>
public static class PodStatusComputer
{
    public static V1PodStatus Compute(V1Pod pod, ObservedPod observed, PodSyncNotes notes, V1PodStatus? previous, string? hostIp, DateTimeOffset now)
    {
        var spec = pod.Spec;
        var restartPolicy = spec.RestartPolicy ?? "Always";
        var sandbox = observed.LatestSandbox;
        var status = new V1PodStatus
        {
            HostIP = hostIp,
            HostIPs = hostIp is null ? null : [new V1HostIP { Ip = hostIp }],
            StartTime = (notes.StartTime ?? now).UtcDateTime.TruncateToSeconds(),
            QosClass = RuntimeConfigBuilder.QosClass(spec),
        };

        if (previous?.StartTime is { } started)
        {
            status.StartTime = started;
        }

        if (notes.PodFailure is { } failure)
        {
            status.Phase = "Failed";
            status.Reason = failure.Reason;
            status.Message = failure.Message;
            status.Conditions = Conditions(previous, now,
                ("PodScheduled", true, null, null),
                ("Initialized", false, failure.Reason, failure.Message),
                ("Ready", false, failure.Reason, failure.Message),
                ("ContainersReady", false, failure.Reason, failure.Message));
            return status;
        }

        var ip = (spec.HostNetwork ?? false) ? hostIp : sandbox?.Ip;
        if (!string.IsNullOrEmpty(ip))
        {
            status.PodIP = ip;
            status.PodIPs = [new V1PodIP { Ip = ip }, .. (sandbox?.AdditionalIps ?? []).Select(a => new V1PodIP { Ip = a })];
        }

        var initStatuses = new List<V1ContainerStatus>();
        var initialized = true;
        var initFailed = false;
        var incompleteInit = new List<string>();
        foreach (var c in spec.InitContainers ?? [])
        {
            var cs = ContainerStatus(c, observed, notes, waitingDefault: "PodInitializing");
            initStatuses.Add(cs);
            var latest = observed.Latest(c.Name);
            if (latest is not { Succeeded: true })
            {
                initialized = false;
                incompleteInit.Add(c.Name);
                if (latest is { IsExited: true } && restartPolicy == "Never")
                {
                    initFailed = true;
                }
            }
        }

        var appStatuses = new List<V1ContainerStatus>();
        var unready = new List<string>();
        foreach (var c in spec.Containers)
        {
            var cs = ContainerStatus(c, observed, notes, waitingDefault: initialized ? "ContainerCreating" : "PodInitializing");
            appStatuses.Add(cs);
            if (!cs.Ready)
            {
                unready.Add(c.Name);
            }
        }

        status.InitContainerStatuses = initStatuses.Count > 0 ? initStatuses : null;
        status.ContainerStatuses = appStatuses;
        status.Phase = Phase(restartPolicy, initialized, initFailed, appStatuses);

        var done = status.Phase is "Succeeded" or "Failed";
        var containersReady = unready.Count == 0 && !done && !notes.Terminating;
        var unreadyMessage = $"containers with unready status: [{string.Join(' ', unready)}]";
        var (readyReason, readyMessage) = done ? ("PodCompleted", (string?)null)
            : containersReady ? (null, null) : ("ContainersNotReady", unreadyMessage);
        status.Conditions = Conditions(previous, now,
            ("PodReadyToStartContainers", sandbox is { Ready: true }, null, null),
            ("Initialized", initialized, initialized ? null : "ContainersNotInitialized",
                initialized ? null : $"containers with incomplete status: [{string.Join(' ', incompleteInit)}]"),
            ("Ready", containersReady, readyReason, readyMessage),
            ("ContainersReady", containersReady, readyReason, readyMessage),
            ("PodScheduled", true, null, null));
        return status;
    }

    /// <summary>kubelet's getPhase.</summary>
    public static string Phase(string restartPolicy, bool initialized, bool initFailed, IReadOnlyList<V1ContainerStatus> statuses)
    {
        if (initFailed)
        {
            return "Failed";
        }

        if (!initialized)
        {
            return "Pending";
        }

        int running = 0, waiting = 0, stopped = 0, succeeded = 0;
        foreach (var cs in statuses)
        {
            if (cs.State?.Running is not null)
            {
                running++;
            }
            else if (cs.State?.Terminated is { } t)
            {
                stopped++;
                if (t.ExitCode == 0)
                {
                    succeeded++;
                }
            }
            else if (cs.State?.Waiting is not null)
            {
                if (cs.LastState?.Terminated is not null)
                {
                    stopped++;
                }
                else
                {
                    waiting++;
                }
            }
        }

        if (waiting > 0)
        {
            return "Pending";
        }

        if (running > 0)
        {
            return "Running";
        }

        if (stopped > 0)
        {
            if (restartPolicy == "Always")
            {
                return "Running";
            }

            if (stopped == succeeded)
            {
                return "Succeeded";
            }

            return restartPolicy == "OnFailure" ? "Running" : "Failed";
        }

        return "Pending";
    }

    private static V1ContainerStatus ContainerStatus(V1Container c, ObservedPod observed, PodSyncNotes notes, string waitingDefault)
    {
        var latest = observed.Latest(c.Name);
        var previous = observed.Previous(c.Name);
        var cs = new V1ContainerStatus
        {
            Name = c.Name,
            Image = c.Image,
            ImageID = latest?.ImageRef ?? string.Empty,
            RestartCount = latest?.RestartCount ?? 0,
            Ready = false,
            Started = false,
        };

        if (latest is not null)
        {
            cs.ContainerID = "containerd://" + latest.Id;
        }

        notes.Waiting.TryGetValue(c.Name, out var waiting);
        switch (latest)
        {
            case { IsRunning: true }:
                var started = !notes.Started.TryGetValue(c.Name, out var s) ? c.StartupProbe is null : s;
                var ready = notes.Ready.TryGetValue(c.Name, out var r) ? r : c.ReadinessProbe is null;
                cs.State = new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = latest.StartedAt?.UtcDateTime.TruncateToSeconds() } };
                cs.Started = started;
                cs.Ready = started && ready;
                cs.LastState = previous is { IsExited: true } ? new V1ContainerState { Terminated = Terminated(previous) } : new V1ContainerState();
                break;
            case { IsExited: true } when waiting is not null:
                cs.State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = waiting.Reason, Message = waiting.Message } };
                cs.LastState = new V1ContainerState { Terminated = Terminated(latest) };
                break;
            case { IsExited: true }:
                cs.State = new V1ContainerState { Terminated = Terminated(latest) };
                cs.LastState = previous is { IsExited: true } ? new V1ContainerState { Terminated = Terminated(previous) } : new V1ContainerState();
                break;
            default:
                cs.State = new V1ContainerState
                {
                    Waiting = new V1ContainerStateWaiting { Reason = waiting?.Reason ?? waitingDefault, Message = waiting?.Message },
                };
                cs.LastState = latest is null && previous is null ? new V1ContainerState() : cs.LastState ?? new V1ContainerState();
                break;
        }

        return cs;
    }

    private static V1ContainerStateTerminated Terminated(ObservedContainer c) => new()
    {
        ExitCode = c.ExitCode,
        Reason = c.Reason == "OOMKilled" ? "OOMKilled" : c.ExitCode == 0 ? "Completed" : "Error",
        Message = string.IsNullOrEmpty(c.Message) ? null : c.Message,
        StartedAt = c.StartedAt?.UtcDateTime.TruncateToSeconds(),
        FinishedAt = c.FinishedAt?.UtcDateTime.TruncateToSeconds(),
        ContainerID = "containerd://" + c.Id,
    };

    private static List<V1PodCondition> Conditions(V1PodStatus? previous, DateTimeOffset now, params (string Type, bool Status, string? Reason, string? Message)[] conditions)
    {
        var list = new List<V1PodCondition>();
        foreach (var (type, value, reason, message) in conditions)
        {
            var text = value ? "True" : "False";
            var old = previous?.Conditions?.FirstOrDefault(c => c.Type == type);
            list.Add(new V1PodCondition
            {
                Type = type,
                Status = text,
                Reason = reason,
                Message = message,
                LastProbeTime = null,
                LastTransitionTime = old is not null && old.Status == text ? old.LastTransitionTime : now.UtcDateTime.TruncateToSeconds(),
            });
        }

        return list;
    }

    /// <summary>Kubernetes timestamps have one-second resolution.</summary>
    public static DateTime TruncateToSeconds(this DateTime time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
