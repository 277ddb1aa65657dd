using EdgeKube.Agent.Cri.V1;

namespace EdgeKube.Agent.Runtime;

/// <summary>What the runtime holds for one pod, as read from CRI. Immutable snapshot.</summary>
public sealed record ObservedPod(string Uid, string Namespace, string Name, IReadOnlyList<ObservedSandbox> Sandboxes, IReadOnlyList<ObservedContainer> Containers)
{
    public static ObservedPod Empty(string uid) => new(uid, string.Empty, string.Empty, [], []);

    /// <summary>The newest sandbox (highest attempt, then newest creation), or null.</summary>
    public ObservedSandbox? LatestSandbox =>
        Sandboxes.OrderByDescending(s => s.Attempt).ThenByDescending(s => s.CreatedAt).FirstOrDefault();

    /// <summary>The newest instance of the named container (highest restart count, then newest creation).</summary>
    public ObservedContainer? Latest(string containerName) =>
        Containers.Where(c => c.Name == containerName)
            .OrderByDescending(c => c.RestartCount).ThenByDescending(c => c.CreatedAt).FirstOrDefault();

    /// <summary>The instance before the newest one, for lastState.</summary>
    public ObservedContainer? Previous(string containerName) =>
        Containers.Where(c => c.Name == containerName)
            .OrderByDescending(c => c.RestartCount).ThenByDescending(c => c.CreatedAt).Skip(1).FirstOrDefault();

    public bool AnyRunning => Containers.Any(c => c.State is ContainerState.ContainerRunning or ContainerState.ContainerCreated or ContainerState.ContainerUnknown)
        || Sandboxes.Any(s => s.Ready);
}

public sealed record ObservedSandbox(string Id, uint Attempt, bool Ready, DateTimeOffset CreatedAt, string? Ip, IReadOnlyList<string> AdditionalIps, bool HostNetwork);

public sealed record ObservedContainer(
    string Id,
    string SandboxId,
    string Name,
    int RestartCount,
    ContainerState State,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int ExitCode,
    string Reason,
    string Message,
    string Image,
    string ImageRef,
    string Hash,
    TimeSpan? TerminationGracePeriod = null)
{
    public bool IsRunning => State == ContainerState.ContainerRunning;

    public bool IsExited => State == ContainerState.ContainerExited;

    public bool Succeeded => State == ContainerState.ContainerExited && ExitCode == 0;
}
