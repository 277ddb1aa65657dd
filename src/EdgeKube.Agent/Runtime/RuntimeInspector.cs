using System.Globalization;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;

namespace EdgeKube.Agent.Runtime;

/// <summary>Reads what the runtime holds for one pod (kubelet's GetPodStatus): its sandboxes and every container with its full status.</summary>
public sealed class RuntimeInspector(IContainerRuntime runtime)
{
    public async Task<ObservedPod> InspectAsync(string uid, CancellationToken cancellationToken)
    {
        var selector = new Dictionary<string, string> { [RuntimeLabels.PodUid] = uid };
        var sandboxFilter = new PodSandboxFilter();
        sandboxFilter.LabelSelector.Add(selector);
        var containerFilter = new ContainerFilter();
        containerFilter.LabelSelector.Add(selector);

        var sandboxes = await runtime.ListPodSandboxAsync(sandboxFilter, cancellationToken).ConfigureAwait(false);
        var containers = await runtime.ListContainersAsync(containerFilter, cancellationToken).ConfigureAwait(false);

        var observedSandboxes = new List<ObservedSandbox>(sandboxes.Count);
        string ns = string.Empty, name = string.Empty;
        foreach (var s in sandboxes)
        {
            ns = s.Metadata?.Namespace ?? ns;
            name = s.Metadata?.Name ?? name;
            string? ip = null;
            var additional = new List<string>();
            var hostNetwork = false;
            if (s.State == PodSandboxState.SandboxReady)
            {
                var status = await runtime.PodSandboxStatusAsync(s.Id, cancellationToken).ConfigureAwait(false);
                if (status?.Network is { } net)
                {
                    ip = string.IsNullOrEmpty(net.Ip) ? null : net.Ip;
                    additional.AddRange(net.AdditionalIps.Select(a => a.Ip));
                }

                hostNetwork = status?.Linux?.Namespaces?.Options?.Network == NamespaceMode.Node;
            }

            observedSandboxes.Add(new ObservedSandbox(s.Id, s.Metadata?.Attempt ?? 0, s.State == PodSandboxState.SandboxReady,
                FromNanos(s.CreatedAt), ip, additional, hostNetwork));
        }

        var observedContainers = new List<ObservedContainer>(containers.Count);
        foreach (var c in containers)
        {
            var status = await runtime.ContainerStatusAsync(c.Id, cancellationToken).ConfigureAwait(false);
            if (status is null)
            {
                continue; // removed between list and status
            }

            observedContainers.Add(ToObserved(c, status));
        }

        return new ObservedPod(uid, ns, name, observedSandboxes, observedContainers);
    }

    private static ObservedContainer ToObserved(Container c, ContainerStatus s)
    {
        var annotations = s.Annotations.Count > 0 ? s.Annotations : c.Annotations;
        var restartCount = annotations.TryGetValue(RuntimeLabels.ContainerRestartCount, out var rc)
            && int.TryParse(rc, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : (int)(s.Metadata?.Attempt ?? 0);
        return new ObservedContainer(
            Id: s.Id,
            SandboxId: c.PodSandboxId,
            Name: c.Labels.TryGetValue(RuntimeLabels.ContainerName, out var name) ? name : s.Metadata?.Name ?? string.Empty,
            RestartCount: restartCount,
            State: s.State,
            CreatedAt: FromNanos(s.CreatedAt),
            StartedAt: s.StartedAt > 0 ? FromNanos(s.StartedAt) : null,
            FinishedAt: s.FinishedAt > 0 ? FromNanos(s.FinishedAt) : null,
            ExitCode: s.ExitCode,
            Reason: s.Reason,
            Message: s.Message,
            Image: annotations.TryGetValue(RuntimeLabels.ContainerImage, out var image) ? image : s.Image?.Image ?? string.Empty,
            ImageRef: s.ImageRef,
            Hash: annotations.TryGetValue(RuntimeLabels.ContainerHash, out var hash) ? hash : string.Empty,
            TerminationGracePeriod: annotations.TryGetValue(RuntimeLabels.PodTerminationGracePeriod, out var g)
                && long.TryParse(g, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) ? TimeSpan.FromSeconds(seconds) : null);
    }

    public static DateTimeOffset FromNanos(long nanos) => DateTimeOffset.UnixEpoch.AddTicks(nanos / 100);
}
