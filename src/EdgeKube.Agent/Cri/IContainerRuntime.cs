using EdgeKube.Agent.Cri.V1;

namespace EdgeKube.Agent.Cri;

/// <summary>
/// The narrow view of a CRI runtime that the agent works through: kubelet's RuntimeService and
/// ImageService, with the CRI messages as currency. Implemented over gRPC by <see cref="CriRuntimeClient"/>
/// and in memory by the unit tests' fake runtime.
/// </summary>
/// <remarks>
/// Rules every implementation keeps, and every caller may rely on:
/// <list type="bullet">
/// <item>Stop and remove calls are idempotent: stopping a stopped container or sandbox, or removing
/// one that is already gone, succeeds.</item>
/// <item>Objects returned are snapshots: the caller may keep them, the runtime never mutates them afterwards.</item>
/// <item>Every call ends within its deadline; a call that cannot reach the runtime throws
/// <see cref="RuntimeException"/> with <see cref="RuntimeErrorKind.Unavailable"/>, so callers
/// retry rather than give up.</item>
/// <item>Errors are classified by what the caller should do (<see cref="RuntimeErrorKind"/>), never by message text.</item>
/// </list>
/// </remarks>
public interface IContainerRuntime
{
    /// <summary>CRI Version: runtime name, version and the CRI API version it speaks.</summary>
    Task<VersionResponse> VersionAsync(CancellationToken cancellationToken);

    /// <summary>CRI Status: runtime conditions (RuntimeReady, NetworkReady).</summary>
    Task<RuntimeStatus> StatusAsync(CancellationToken cancellationToken);

    Task<string> RunPodSandboxAsync(PodSandboxConfig config, CancellationToken cancellationToken);

    Task StopPodSandboxAsync(string podSandboxId, CancellationToken cancellationToken);

    Task RemovePodSandboxAsync(string podSandboxId, CancellationToken cancellationToken);

    /// <summary>Returns null when the sandbox does not exist.</summary>
    Task<PodSandboxStatus?> PodSandboxStatusAsync(string podSandboxId, CancellationToken cancellationToken);

    Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken cancellationToken);

    Task<string> CreateContainerAsync(string podSandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken cancellationToken);

    Task StartContainerAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>SIGTERM (or the image's stop signal), then SIGKILL after <paramref name="gracePeriod"/>.</summary>
    Task StopContainerAsync(string containerId, TimeSpan gracePeriod, CancellationToken cancellationToken);

    Task RemoveContainerAsync(string containerId, CancellationToken cancellationToken);

    Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken cancellationToken);

    /// <summary>
    /// The relist's view (kubelet's PLEG): id, pod and state of every container and sandbox whose labels
    /// match <paramref name="labelSelector"/>. The same CRI list calls as <see cref="ListContainersAsync"/> and
    /// <see cref="ListPodSandboxAsync"/>, read without labels, annotations and image specs, since it runs every
    /// second. Containers are listed first, so a listed container's sandbox is listed too unless it was removed
    /// in between.
    /// </summary>
    Task<RuntimeListing> ListPodStatesAsync(IReadOnlyDictionary<string, string> labelSelector, CancellationToken cancellationToken);

    /// <summary>Returns null when the container does not exist.</summary>
    Task<ContainerStatus?> ContainerStatusAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>Runs a command in a running container and waits for it, at most <paramref name="timeout"/>.</summary>
    Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken);

    Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken cancellationToken);

    /// <summary>Returns null when the image is not present.</summary>
    Task<Image?> ImageStatusAsync(string image, CancellationToken cancellationToken);

    /// <summary>Pulls the image and returns its reference (image id or digest).</summary>
    Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken cancellationToken);

    Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken cancellationToken);

    Task RemoveImageAsync(string image, CancellationToken cancellationToken);
}

/// <summary>A sandbox as the relist sees it; <see cref="PodUid"/> is the sandbox metadata's uid.</summary>
public readonly record struct ListedSandbox(string Id, string PodUid, PodSandboxState State);

/// <summary>A container as the relist sees it.</summary>
public readonly record struct ListedContainer(string Id, string PodSandboxId, ContainerState State);

/// <summary>What <see cref="IContainerRuntime.ListPodStatesAsync"/> returns.</summary>
public sealed record RuntimeListing(IReadOnlyList<ListedSandbox> Sandboxes, IReadOnlyList<ListedContainer> Containers);

/// <summary>What a caller should do about a failed runtime call.</summary>
public enum RuntimeErrorKind
{
    /// <summary>The object does not exist (anymore).</summary>
    NotFound,

    /// <summary>The runtime could not be reached or did not answer in time: retry later.</summary>
    Unavailable,

    /// <summary>The runtime refused the request as given (bad config, bad image name): retrying the same request will not help.</summary>
    InvalidRequest,

    /// <summary>Anything else the runtime reported; retried with backoff.</summary>
    Failed,
}

/// <summary>A runtime call failed; <see cref="Kind"/> says how to treat it.</summary>
public sealed class RuntimeException(RuntimeErrorKind kind, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public RuntimeErrorKind Kind { get; } = kind;
}
