using System.Globalization;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;

namespace EdgeKube.Agent.Runtime;

/// <summary>
/// Reads what the runtime holds for one pod (kubelet's GetPodStatus): its sandboxes and every container with its full
/// status. Four or more CRI calls a pod.
/// <para>
/// With the relist's observer it also keeps each pod's last answer, as kubelet's pod cache does for its periodic
/// syncs: a pod worker's once-a-minute look (<see cref="InspectAsync(string, bool, CancellationToken)"/> with
/// <c>allowCached</c>) gets the kept answer while it is known to be current, and costs no CRI call. It is current when no
/// relist has reported the pod changed since the answer was first asked for, and a relist that started after the
/// answer came has succeeded. Every sandbox and container only moves forward (created, running, exited, removed; ready,
/// not ready, removed) and their ids are never reused, so anything that changed after the read differs between two
/// relists at or after it, and the later one reports the pod changed. Everything else (a new spec, a wake-up by the
/// relist or a probe, a retry, the turn after a plan ran) reads the runtime.
/// </para>
/// </summary>
public sealed class RuntimeInspector
{
    private readonly IContainerRuntime _runtime;
    private readonly RuntimeObserver? _observer;
    private readonly object _lock = new();
    private readonly Dictionary<string, Kept> _kept = new(StringComparer.Ordinal);

    public RuntimeInspector(IContainerRuntime runtime, RuntimeObserver? observer = null)
    {
        _runtime = runtime;
        _observer = observer;
        if (observer is not null)
        {
            observer.PodChanged += Forget;
            observer.Relisted += KeepOnly;
        }
    }

    /// <summary>Looks answered from the kept answer, without a CRI call.</summary>
    public long KeptAnswers => Interlocked.Read(ref _keptAnswers);

    private long _keptAnswers;

    /// <summary>Reads the runtime.</summary>
    public Task<ObservedPod> InspectAsync(string uid, CancellationToken cancellationToken) => InspectAsync(uid, allowCached: false, cancellationToken);

    /// <summary>With <paramref name="allowCached"/>, the kept answer while it is current (see the class); otherwise, or when it is not, reads the runtime.</summary>
    public async Task<ObservedPod> InspectAsync(string uid, bool allowCached, CancellationToken cancellationToken)
    {
        if (_observer is not { } observer)
        {
            return await ReadAsync(uid, cancellationToken).ConfigureAwait(false);
        }

        Kept ticket;
        lock (_lock)
        {
            if (allowCached && _kept.TryGetValue(uid, out var kept) && kept.Pod is { } pod && observer.LastGoodListStart > kept.ListsStartedWhenRead)
            {
                Interlocked.Increment(ref _keptAnswers);
                return pod;
            }

            // Taken before the read: a change reported while it runs removes it, and its answer is not kept.
            _kept[uid] = ticket = new Kept();
        }

        var observed = await ReadAsync(uid, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            if (_kept.TryGetValue(uid, out var current) && ReferenceEquals(current, ticket))
            {
                ticket.ListsStartedWhenRead = observer.ListsStarted;
                ticket.Pod = observed;
            }
        }

        return observed;
    }

    private void Forget(string uid)
    {
        lock (_lock)
        {
            _kept.Remove(uid);
        }
    }

    /// <summary>Drops what is kept for pods the runtime no longer holds (their workers read afresh anyway).</summary>
    private void KeepOnly(IReadOnlyCollection<string> uids)
    {
        lock (_lock)
        {
            List<string>? gone = null;
            foreach (var uid in _kept.Keys)
            {
                if (!uids.Contains(uid))
                {
                    (gone ??= []).Add(uid);
                }
            }

            if (gone is null)
            {
                return;
            }

            foreach (var uid in gone)
            {
                _kept.Remove(uid);
            }
        }
    }

    private sealed class Kept
    {
        public ObservedPod? Pod;
        public long ListsStartedWhenRead;
    }

    private async Task<ObservedPod> ReadAsync(string uid, CancellationToken cancellationToken)
    {
        var selector = new Dictionary<string, string> { [RuntimeLabels.PodUid] = uid };
        var sandboxFilter = new PodSandboxFilter();
        sandboxFilter.LabelSelector.Add(selector);
        var containerFilter = new ContainerFilter();
        containerFilter.LabelSelector.Add(selector);

        var sandboxes = await _runtime.ListPodSandboxAsync(sandboxFilter, cancellationToken).ConfigureAwait(false);
        var containers = await _runtime.ListContainersAsync(containerFilter, cancellationToken).ConfigureAwait(false);

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
                var status = await _runtime.PodSandboxStatusAsync(s.Id, cancellationToken).ConfigureAwait(false);
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
            var status = await _runtime.ContainerStatusAsync(c.Id, cancellationToken).ConfigureAwait(false);
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
