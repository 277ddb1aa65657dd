namespace EdgeKube.Agent.Pods;

/// <summary>
/// The runtime commands one pod worker turn will run, in this order: kill what must go, create a
/// sandbox if needed, then start containers. Computed by <see cref="PodPlanner"/>, run by
/// <see cref="PodSyncer"/>. A plan is a value: tests compare plans directly.
/// </summary>
public sealed record PodPlan
{
    /// <summary>Stop every container and sandbox of the pod (before creating a new sandbox, or because the pod is done).</summary>
    public bool KillPod { get; init; }

    /// <summary>Create a new sandbox with this attempt number; null keeps the current one.</summary>
    public uint? CreateSandboxAttempt { get; init; }

    /// <summary>The sandbox the containers will run in, when it already exists.</summary>
    public string? SandboxId { get; init; }

    /// <summary>Containers to start (init containers are started one at a time; app containers together).</summary>
    public IReadOnlyList<string> ContainersToStart { get; init; } = [];

    /// <summary>Containers created but never started (an agent killed between create and start): started as they are, not recreated.</summary>
    public IReadOnlyList<string> ContainersToResume { get; init; } = [];

    /// <summary>Running containers to stop, with why.</summary>
    public IReadOnlyList<ContainerKill> ContainersToKill { get; init; } = [];

    /// <summary>Exited containers to remove (garbage kubelet would not keep).</summary>
    public IReadOnlyList<string> ContainersToRemove { get; init; } = [];

    /// <summary>Stale sandboxes to remove.</summary>
    public IReadOnlyList<string> SandboxesToRemove { get; init; } = [];

    public bool IsEmpty => !KillPod && CreateSandboxAttempt is null && ContainersToStart.Count == 0 && ContainersToResume.Count == 0
        && ContainersToKill.Count == 0 && ContainersToRemove.Count == 0 && SandboxesToRemove.Count == 0;
}

/// <summary>A running container to stop, and the reason recorded for it.</summary>
public sealed record ContainerKill(string ContainerId, string Name, string Reason);
