using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// Runs a <see cref="PodPlan"/> against the runtime: kills, sandbox creation, image pulls and container
/// starts, with kubelet's CrashLoopBackOff and ImagePullBackOff. Records why a container is waiting
/// into the worker's notes. Owns retries and cool-off; the planner stays pure.
/// </summary>
public sealed partial class PodSyncer(
    IContainerRuntime runtime,
    RuntimeConfigBuilder configs,
    Backoff crashBackoff,
    Backoff imageBackoff,
    TimeProvider time,
    ILogger<PodSyncer> logger)
{
    /// <summary>Runs the plan. Waiting reasons are updated in <paramref name="waiting"/>. Returns when the worker should look again at the latest.</summary>
    public async Task<TimeSpan?> RunAsync(V1Pod pod, ObservedPod observed, PodPlan plan, Dictionary<string, ContainerWaiting> waiting, CancellationToken cancellationToken)
    {
        var grace = TimeSpan.FromSeconds(pod.Spec.TerminationGracePeriodSeconds ?? PodValidation.DefaultTerminationGracePeriodSeconds);
        foreach (var kill in plan.ContainersToKill)
        {
            LogKillingContainer(pod.Namespace(), pod.Name(), kill.Name, kill.Reason);
            await runtime.StopContainerAsync(kill.ContainerId, grace, cancellationToken).ConfigureAwait(false);
        }

        if (plan.KillPod)
        {
            await KillPodAsync(observed, grace, cancellationToken).ConfigureAwait(false);
        }

        foreach (var id in plan.ContainersToRemove)
        {
            await runtime.RemoveContainerAsync(id, cancellationToken).ConfigureAwait(false);
        }

        foreach (var id in plan.SandboxesToRemove)
        {
            await runtime.StopPodSandboxAsync(id, cancellationToken).ConfigureAwait(false);
            await runtime.RemovePodSandboxAsync(id, cancellationToken).ConfigureAwait(false);
        }

        var sandboxId = plan.SandboxId;
        var sandboxConfig = configs.BuildSandboxConfig(pod, plan.CreateSandboxAttempt ?? observed.LatestSandbox?.Attempt ?? 0);
        string? podIp = observed.Sandboxes.FirstOrDefault(s => s.Id == sandboxId)?.Ip;
        if (plan.CreateSandboxAttempt is { } attempt)
        {
            Directory.CreateDirectory(sandboxConfig.LogDirectory);
            LogCreatingSandbox(pod.Namespace(), pod.Name(), attempt);
            try
            {
                sandboxId = await runtime.RunPodSandboxAsync(sandboxConfig, cancellationToken).ConfigureAwait(false);
            }
            catch (RuntimeException e) when (e.Kind != RuntimeErrorKind.Unavailable)
            {
                LogSandboxFailed(pod.Namespace(), pod.Name(), e.Message);
                foreach (var name in plan.ContainersToStart)
                {
                    waiting[name] = new ContainerWaiting("ContainerCreating", "Failed to create pod sandbox: " + e.Message);
                }

                return TimeSpan.FromSeconds(5);
            }

            LogSandboxReady(pod.Namespace(), pod.Name(), sandboxId);
            var status = await runtime.PodSandboxStatusAsync(sandboxId, cancellationToken).ConfigureAwait(false);
            podIp = string.IsNullOrEmpty(status?.Network?.Ip) ? null : status.Network.Ip;
        }

        TimeSpan? retry = null;
        if (sandboxId is null)
        {
            return retry;
        }

        foreach (var id in plan.ContainersToResume)
        {
            var name = observed.Containers.FirstOrDefault(c => c.Id == id)?.Name ?? id;
            try
            {
                await runtime.StartContainerAsync(id, cancellationToken).ConfigureAwait(false);
                LogResumedContainer(pod.Namespace(), pod.Name(), name);
            }
            catch (RuntimeException e) when (e.Kind != RuntimeErrorKind.Unavailable)
            {
                // The container is now exited (StartError) or gone: the next turn restarts it as policy says.
                LogResumeFailed(pod.Namespace(), pod.Name(), name, e.Message);
                retry = TimeSpan.FromSeconds(1);
            }
        }

        foreach (var name in plan.ContainersToStart)
        {
            var next = await StartContainerAsync(pod, name, sandboxId, sandboxConfig, podIp, observed, waiting, cancellationToken).ConfigureAwait(false);
            if (next is { } n && (retry is null || n < retry))
            {
                retry = n;
            }
        }

        return retry;
    }

    /// <summary>Stops every container (with the grace period) and every sandbox of the pod.</summary>
    public async Task KillPodAsync(ObservedPod observed, TimeSpan grace, CancellationToken cancellationToken)
    {
        var running = observed.Containers.Where(c => !c.IsExited).ToList();
        await Task.WhenAll(running.Select(c => runtime.StopContainerAsync(c.Id, grace, cancellationToken))).ConfigureAwait(false);
        foreach (var s in observed.Sandboxes.Where(s => s.Ready))
        {
            await runtime.StopPodSandboxAsync(s.Id, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Starts one container; returns a retry delay when it is waiting on a backoff.</summary>
    private async Task<TimeSpan?> StartContainerAsync(V1Pod pod, string name, string sandboxId, PodSandboxConfig sandboxConfig, string? podIp, ObservedPod observed, Dictionary<string, ContainerWaiting> waiting, CancellationToken cancellationToken)
    {
        var isInit = pod.Spec.InitContainers?.Any(c => c.Name == name) ?? false;
        var container = PodValidation.AllContainers(pod.Spec).First(c => c.Name == name);
        var latest = observed.Latest(name);
        var key = $"{pod.Uid()}/{name}/{PodHashes.Of(container)}";

        if (latest is { IsExited: true } && latest.FinishedAt is { } finished)
        {
            var left = crashBackoff.RemainingSince(key, finished);
            if (left > TimeSpan.Zero)
            {
                var delay = crashBackoff.Current(key);
                waiting[name] = new ContainerWaiting("CrashLoopBackOff",
                    $"back-off {FormatDuration(delay)} restarting failed container={name} pod={pod.Name()}_{pod.Namespace()}({pod.Uid()})");
                return left;
            }

            crashBackoff.Next(key, finished);
        }

        var imageRef = await EnsureImageAsync(pod, container, sandboxConfig, waiting, cancellationToken).ConfigureAwait(false);
        if (imageRef is null)
        {
            // As kubelet: a failed pull shows ErrImagePull, the next turn (soon) ImagePullBackOff until the backoff expires.
            if (waiting.TryGetValue(name, out var why) && why.Reason == "ErrImagePull")
            {
                return TimeSpan.FromSeconds(1);
            }

            return imageBackoff.RemainingSince(ImageKey(pod, container), time.GetUtcNow()) is { } r && r > TimeSpan.Zero ? r : TimeSpan.FromSeconds(1);
        }

        var restartCount = latest is null ? 0 : latest.RestartCount + 1;
        ContainerConfig config;
        try
        {
            config = configs.BuildContainerConfig(pod, container, imageRef, restartCount, podIp, isInit);
        }
        catch (Exception e) when (e is ContainerConfigException or IOException or UnauthorizedAccessException)
        {
            waiting[name] = new ContainerWaiting("CreateContainerConfigError", e.Message);
            LogStartFailed(pod.Namespace(), pod.Name(), name, "CreateContainerConfigError", e.Message);
            return TimeSpan.FromSeconds(10);
        }

        string id;
        try
        {
            id = await runtime.CreateContainerAsync(sandboxId, config, sandboxConfig, cancellationToken).ConfigureAwait(false);
        }
        catch (RuntimeException e) when (e.Kind != RuntimeErrorKind.Unavailable)
        {
            waiting[name] = new ContainerWaiting("CreateContainerError", e.Message);
            LogStartFailed(pod.Namespace(), pod.Name(), name, "CreateContainerError", e.Message);
            return TimeSpan.FromSeconds(10);
        }

        LogCreatedContainer(pod.Namespace(), pod.Name(), name, id);
        try
        {
            await runtime.StartContainerAsync(id, cancellationToken).ConfigureAwait(false);
        }
        catch (RuntimeException e) when (e.Kind != RuntimeErrorKind.Unavailable)
        {
            // The container exists and has exited with the error; CrashLoopBackOff applies from here.
            waiting[name] = new ContainerWaiting("RunContainerError", e.Message);
            LogStartFailed(pod.Namespace(), pod.Name(), name, "RunContainerError", e.Message);
            return TimeSpan.FromSeconds(1);
        }

        waiting.Remove(name);
        LogStartedContainer(pod.Namespace(), pod.Name(), name, restartCount);
        return null;
    }

    /// <summary>Makes the image present as the pull policy says; null when the container must wait (reason recorded).</summary>
    private async Task<string?> EnsureImageAsync(V1Pod pod, V1Container container, PodSandboxConfig sandboxConfig, Dictionary<string, ContainerWaiting> waiting, CancellationToken cancellationToken)
    {
        var image = container.Image;
        var policy = container.ImagePullPolicy ?? PodValidation.DefaultPullPolicy(image);
        if (policy != "Always")
        {
            var present = await runtime.ImageStatusAsync(image, cancellationToken).ConfigureAwait(false);
            if (present is not null)
            {
                return present.Id;
            }

            if (policy == "Never")
            {
                waiting[container.Name] = new ContainerWaiting("ErrImageNeverPull", $"Container image \"{image}\" is not present with pull policy of Never");
                return null;
            }
        }

        var key = ImageKey(pod, container);
        if (imageBackoff.IsInBackoffSinceUpdate(key))
        {
            waiting[container.Name] = new ContainerWaiting("ImagePullBackOff", $"Back-off pulling image \"{image}\"");
            return null;
        }

        LogPulling(image);
        try
        {
            var imageRef = await runtime.PullImageAsync(image, sandboxConfig, cancellationToken).ConfigureAwait(false);
            imageBackoff.Reset(key);
            var status = await runtime.ImageStatusAsync(imageRef, cancellationToken).ConfigureAwait(false);
            return status?.Id ?? imageRef;
        }
        catch (RuntimeException e)
        {
            imageBackoff.Next(key, time.GetUtcNow());
            waiting[container.Name] = new ContainerWaiting("ErrImagePull", e.Message);
            LogPullFailed(image, e.Message);
            return null;
        }
    }

    private static string ImageKey(V1Pod pod, V1Container container) => $"{pod.Uid()}/{container.Name}/image/{container.Image}";

    /// <summary>Go's time.Duration formatting for whole seconds ("10s", "2m40s", "5m0s").</summary>
    public static string FormatDuration(TimeSpan d)
    {
        var total = (long)d.TotalSeconds;
        return total < 60 ? $"{total}s" : total < 3600 ? $"{total / 60}m{total % 60}s" : $"{total / 3600}h{total % 3600 / 60}m{total % 60}s";
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Creating sandbox for pod {Namespace}/{Pod} (attempt {Attempt})")]
    private partial void LogCreatingSandbox(string @namespace, string pod, uint attempt);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Failed to create sandbox for pod {Namespace}/{Pod}: {Error}")]
    private partial void LogSandboxFailed(string @namespace, string pod, string error);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Started container {Namespace}/{Pod}/{Container} (restart {RestartCount})")]
    private partial void LogStartedContainer(string @namespace, string pod, string container, int restartCount);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Container {Namespace}/{Pod}/{Container} failed to start: {Reason}: {Error}")]
    private partial void LogStartFailed(string @namespace, string pod, string container, string reason, string error);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "Killing container {Namespace}/{Pod}/{Container}: {Reason}")]
    private partial void LogKillingContainer(string @namespace, string pod, string container, string reason);

    [LoggerMessage(EventId = 205, Level = LogLevel.Information, Message = "Pulling image {Image}")]
    private partial void LogPulling(string image);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Failed to pull image {Image}: {Error}")]
    private partial void LogPullFailed(string image, string error);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "Started container {Namespace}/{Pod}/{Container} that was created but never started")]
    private partial void LogResumedContainer(string @namespace, string pod, string container);

    [LoggerMessage(EventId = 209, Level = LogLevel.Debug, Message = "Sandbox {Id} of pod {Namespace}/{Pod} is ready")]
    private partial void LogSandboxReady(string @namespace, string pod, string id);

    [LoggerMessage(EventId = 210, Level = LogLevel.Debug, Message = "Created container {Namespace}/{Pod}/{Container} ({Id})")]
    private partial void LogCreatedContainer(string @namespace, string pod, string container, string id);

    [LoggerMessage(EventId = 208, Level = LogLevel.Warning, Message = "Container {Namespace}/{Pod}/{Container} was created but could not be started: {Error}")]
    private partial void LogResumeFailed(string @namespace, string pod, string container, string error);
}
