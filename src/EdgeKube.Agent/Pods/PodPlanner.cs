using EdgeKube.Agent.Runtime;
using k8s.Models;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// Pure: diffs a desired pod against what the runtime holds and returns the plan that moves one step
/// closer, following kubelet's computePodActions. No I/O, no clock: backoff is applied by the syncer
/// when it runs the plan.
/// </summary>
public static class PodPlanner
{
    /// <summary>Plan for a pod that should run.</summary>
    /// <param name="pod">The desired pod, defaulted and valid.</param>
    /// <param name="observed">What the runtime holds for it.</param>
    /// <param name="unhealthy">Running containers whose liveness or startup probe has failed, by name, with the message.</param>
    public static PodPlan PlanSync(V1Pod pod, ObservedPod observed, IReadOnlyDictionary<string, string>? unhealthy = null)
    {
        unhealthy ??= new Dictionary<string, string>();
        var spec = pod.Spec;
        var restartPolicy = spec.RestartPolicy ?? "Always";
        var initContainers = spec.InitContainers ?? [];
        var hashes = PodHashes.Compute(spec);
        var garbage = CollectGarbage(pod, observed);

        var (sandboxChanged, attempt, sandbox) = SandboxChanged(pod, observed);
        if (sandboxChanged)
        {
            // A sandbox that died after its containers ran is not recreated when the pod would not restart them.
            if (attempt > 0 && observed.Containers.Count > 0 && !ShouldRecreateSandbox(spec, observed))
            {
                return new PodPlan
                {
                    KillPod = observed.AnyRunning,
                    ContainersToRemove = garbage.Containers,
                    SandboxesToRemove = garbage.Sandboxes,
                };
            }

            IReadOnlyList<string> toStart;
            if (initContainers.Count > 0)
            {
                toStart = [initContainers[0].Name];
            }
            else
            {
                toStart = spec.Containers
                    .Where(c => !(restartPolicy == "OnFailure" && observed.Latest(c.Name) is { Succeeded: true }))
                    .Select(c => c.Name).ToList();
            }

            return new PodPlan
            {
                KillPod = observed.AnyRunning,
                CreateSandboxAttempt = attempt,
                ContainersToStart = toStart,
                ContainersToRemove = garbage.Containers,
                SandboxesToRemove = garbage.Sandboxes,
            };
        }

        var kills = new List<ContainerKill>();
        var starts = new List<string>();
        var resumes = new List<string>();
        var current = sandbox!.Id;

        // Containers of this sandbox that the spec no longer names.
        var specNames = PodValidation.AllContainers(spec).Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var c in observed.Containers.Where(c => c.IsRunning && !specNames.Contains(c.Name)))
        {
            kills.Add(new ContainerKill(c.Id, c.Name, "Container is not in the pod spec"));
        }

        // Init containers: one at a time, in order, each to success.
        for (var i = 0; i < initContainers.Count; i++)
        {
            var init = initContainers[i];
            var latest = LatestIn(observed, init.Name, current);
            if (latest is null)
            {
                starts.Add(init.Name);
                return Finish(kills, starts, resumes, current, garbage);
            }

            if (latest.State == Cri.V1.ContainerState.ContainerCreated)
            {
                resumes.Add(latest.Id);
                return Finish(kills, starts, resumes, current, garbage);
            }

            if (latest.IsRunning)
            {
                if (unhealthy.TryGetValue(init.Name, out var why))
                {
                    kills.Add(new ContainerKill(latest.Id, init.Name, why));
                }

                return Finish(kills, starts, resumes, current, garbage);
            }

            if (latest.Succeeded)
            {
                continue;
            }

            // Exited with failure (or unknown).
            if (restartPolicy == "Never")
            {
                // The pod has failed: stop everything, keep the containers for their logs.
                return new PodPlan { KillPod = true, ContainersToRemove = garbage.Containers, SandboxesToRemove = garbage.Sandboxes };
            }

            starts.Add(init.Name);
            return Finish(kills, starts, resumes, current, garbage);
        }

        var keep = 0;
        foreach (var c in spec.Containers)
        {
            var latest = observed.Latest(c.Name);
            if (latest is null || !(latest.IsRunning || latest.State == Cri.V1.ContainerState.ContainerCreated))
            {
                if (ShouldRestart(restartPolicy, latest))
                {
                    starts.Add(c.Name);
                }

                continue;
            }

            if (latest.SandboxId != current)
            {
                kills.Add(new ContainerKill(latest.Id, c.Name, "Container runs in a stale sandbox"));
                starts.Add(c.Name);
                continue;
            }

            if (latest.Hash.Length > 0 && hashes.TryGetValue(c.Name, out var hash) && latest.Hash != hash)
            {
                kills.Add(new ContainerKill(latest.Id, c.Name, $"Container {c.Name} definition changed, will be restarted"));
                starts.Add(c.Name);
                continue;
            }

            if (unhealthy.TryGetValue(c.Name, out var message))
            {
                kills.Add(new ContainerKill(latest.Id, c.Name, message));
                if (restartPolicy != "Never")
                {
                    starts.Add(c.Name);
                }

                continue;
            }

            if (latest.State == Cri.V1.ContainerState.ContainerCreated)
            {
                resumes.Add(latest.Id);
            }

            keep++;
        }

        if (keep == 0 && starts.Count == 0)
        {
            // Nothing runs and nothing will: the pod is done; stop its sandbox, keep the exited containers.
            return new PodPlan
            {
                KillPod = observed.AnyRunning,
                ContainersToKill = kills,
                ContainersToRemove = garbage.Containers,
                SandboxesToRemove = garbage.Sandboxes,
            };
        }

        return Finish(kills, starts, resumes, current, garbage);
    }

    /// <summary>Plan for a pod that must go: stop everything, then remove it all.</summary>
    public static PodPlan PlanTerminate(ObservedPod observed) => new()
    {
        KillPod = observed.AnyRunning,
        ContainersToRemove = observed.Containers.Where(c => !c.IsRunning).Select(c => c.Id).ToList(),
        SandboxesToRemove = observed.Sandboxes.Where(s => !s.Ready).Select(s => s.Id).ToList(),
    };

    /// <summary>kubelet's rule: Always restarts, OnFailure restarts failures, Never does not; a container never started is started.</summary>
    public static bool ShouldRestart(string restartPolicy, ObservedContainer? latest) => latest is null || restartPolicy switch
    {
        "Always" => true,
        "OnFailure" => !latest.Succeeded,
        _ => false,
    };

    private static PodPlan Finish(List<ContainerKill> kills, List<string> starts, List<string> resumes, string sandboxId, (IReadOnlyList<string> Containers, IReadOnlyList<string> Sandboxes) garbage) => new()
    {
        SandboxId = sandboxId,
        ContainersToKill = kills,
        ContainersToStart = starts,
        ContainersToResume = resumes,
        ContainersToRemove = garbage.Containers,
        SandboxesToRemove = garbage.Sandboxes,
    };

    private static ObservedContainer? LatestIn(ObservedPod observed, string name, string sandboxId) =>
        observed.Containers.Where(c => c.Name == name && c.SandboxId == sandboxId)
            .OrderByDescending(c => c.RestartCount).ThenByDescending(c => c.CreatedAt).FirstOrDefault();

    private static bool ShouldRecreateSandbox(V1PodSpec spec, ObservedPod observed) => spec.RestartPolicy switch
    {
        "Always" => true,
        "OnFailure" => spec.Containers.Any(c => observed.Latest(c.Name) is not { Succeeded: true }),
        _ => false,
    };

    /// <summary>kubelet's podSandboxChanged: none, not ready, more than one ready, or host network toggled.</summary>
    private static (bool Changed, uint Attempt, ObservedSandbox? Sandbox) SandboxChanged(V1Pod pod, ObservedPod observed)
    {
        var latest = observed.LatestSandbox;
        if (latest is null)
        {
            return (true, 0, null);
        }

        var readyCount = observed.Sandboxes.Count(s => s.Ready);
        if (readyCount > 1 || !latest.Ready)
        {
            return (true, latest.Attempt + 1, latest);
        }

        if (latest.HostNetwork != (pod.Spec.HostNetwork ?? false))
        {
            return (true, latest.Attempt + 1, latest);
        }

        return (false, latest.Attempt, latest);
    }

    /// <summary>
    /// kubelet's container GC within a pod: keep the newest exited instance of each container (its
    /// lastState and logs) and remove the older ones; remove sandboxes that are neither ready, the
    /// newest, nor holding a container we keep.
    /// </summary>
    private static (IReadOnlyList<string> Containers, IReadOnlyList<string> Sandboxes) CollectGarbage(V1Pod pod, ObservedPod observed)
    {
        var removeContainers = new List<string>();
        foreach (var group in observed.Containers.GroupBy(c => c.Name))
        {
            var ordered = group.OrderByDescending(c => c.RestartCount).ThenByDescending(c => c.CreatedAt).ToList();
            var keptExited = 0;
            foreach (var c in ordered)
            {
                if (!c.IsExited)
                {
                    continue;
                }

                // The newest instance and one exited one before it stay (state and lastState).
                if (c == ordered[0] || keptExited++ < 1)
                {
                    continue;
                }

                removeContainers.Add(c.Id);
            }
        }

        var latest = observed.LatestSandbox;
        var keptSandboxIds = observed.Containers.Where(c => !removeContainers.Contains(c.Id)).Select(c => c.SandboxId).ToHashSet(StringComparer.Ordinal);
        var removeSandboxes = observed.Sandboxes
            .Where(s => !s.Ready && s != latest && !keptSandboxIds.Contains(s.Id))
            .Select(s => s.Id).ToList();
        return (removeContainers, removeSandboxes);
    }
}
