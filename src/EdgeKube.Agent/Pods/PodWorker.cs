using System.Threading.Channels;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Probes;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Pods;

/// <summary>The lifecycle of a pod worker, as in kubelet's pod workers.</summary>
public enum PodWorkerState
{
    /// <summary>The pod should run: each turn plans and runs the next step.</summary>
    Syncing,

    /// <summary>The pod must go: containers are stopped with the grace period, then removed.</summary>
    Terminating,

    /// <summary>Nothing of the pod is left in the runtime; the worker ends.</summary>
    Terminated,
}

/// <summary>The allowed pod worker transitions, in one place (a test holds this table).</summary>
public static class PodWorkerTransitions
{
    public static readonly IReadOnlySet<(PodWorkerState From, PodWorkerState To)> Allowed = new HashSet<(PodWorkerState, PodWorkerState)>
    {
        (PodWorkerState.Syncing, PodWorkerState.Terminating),
        (PodWorkerState.Terminating, PodWorkerState.Terminated),
    };

    public static bool IsAllowed(PodWorkerState from, PodWorkerState to) => from == to || Allowed.Contains((from, to));
}

/// <summary>Shared services every pod worker uses.</summary>
public sealed record PodWorkerContext(
    IContainerRuntime Runtime,
    RuntimeInspector Inspector,
    PodSyncer Syncer,
    ProbeManager Probes,
    StatusManager Statuses,
    Backoff CrashBackoff,
    Backoff ImageBackoff,
    NodeLayout Layout,
    Func<string?> HostIp,
    TimeProvider Time,
    ILogger Logger)
{
    /// <summary>
    /// How often a worker looks again when nothing wakes it: kubelet's --sync-frequency (1 min). It is only the safety
    /// net: the relist wakes a worker within a second of any change in the runtime, a probe result or a new spec at once,
    /// and backoffs name their own retry. A look reads the runtime (four CRI calls) only when the relist cannot vouch for
    /// the pod cache's answer (<see cref="RuntimeInspector"/>).
    /// </summary>
    public TimeSpan ResyncPeriod { get; init; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// One serial worker per pod: each turn reads what the runtime holds, plans, runs the plan and reports
/// status. The latest desired spec wins; turns for one pod never overlap; pods run in parallel.
/// </summary>
public sealed partial class PodWorker
{
    private readonly PodWorkerContext _ctx;
    private readonly ILogger _logger;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Dictionary<string, ContainerWaiting> _waiting = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private V1Pod? _desired;
    private V1Pod? _lastPod;
    private TimeSpan? _gracePeriodOverride;

    public PodWorker(string uid, V1Pod? desired, PodWorkerContext context)
    {
        Uid = uid;
        _desired = desired;
        _lastPod = desired;
        _ctx = context;
        _logger = context.Logger;
        State = desired is null ? PodWorkerState.Terminating : PodWorkerState.Syncing;
        StartTime = context.Time.GetUtcNow();
    }

    public string Uid { get; }

    public PodWorkerState State { get; private set; }

    public DateTimeOffset StartTime { get; }

    /// <summary>The latest spec replaces the one the next turn runs.</summary>
    public void Update(V1Pod pod)
    {
        lock (_lock)
        {
            if (State != PodWorkerState.Syncing)
            {
                return;
            }

            _desired = pod;
            _lastPod = pod;
        }

        Wake();
    }

    /// <summary>The pod is no longer desired: stop it with its grace period (or the one given).</summary>
    public void Terminate(TimeSpan? gracePeriod = null)
    {
        lock (_lock)
        {
            if (State == PodWorkerState.Syncing)
            {
                Transition(PodWorkerState.Terminating);
            }

            _gracePeriodOverride = gracePeriod;
            _desired = null;
        }

        Wake();
    }

    public void Wake() => _wake.Writer.TryWrite(true);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var resync = false;
        while (!cancellationToken.IsCancellationRequested && State != PodWorkerState.Terminated)
        {
            TimeSpan next;
            try
            {
                next = await TurnAsync(cancellationToken, resync).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (RuntimeException e)
            {
                LogTurnFailed(Uid, e.Message);
                next = TimeSpan.FromSeconds(2);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException or FormatException or TimeoutException)
            {
                LogTurnFailed(Uid, e.ToString());
                next = TimeSpan.FromSeconds(5);
            }

            if (State == PodWorkerState.Terminated)
            {
                return;
            }

            using var delay = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var timer = Task.Delay(next, _ctx.Time, delay.Token);
            var woken = _wake.Reader.WaitToReadAsync(delay.Token).AsTask();
            try
            {
                await Task.WhenAny(timer, woken).ConfigureAwait(false);
            }
            finally
            {
                await delay.CancelAsync().ConfigureAwait(false);
            }

            // Nothing woke the worker and no retry was due: the periodic look, which may take the pod cache's answer.
            resync = !_wake.Reader.TryRead(out _) && next == _ctx.ResyncPeriod;
        }
    }

    /// <summary>
    /// One turn: sync or terminate; returns when to look again. A <paramref name="resync"/> turn (the periodic look) takes
    /// the pod cache's answer while it is current (<see cref="RuntimeInspector"/>). Internal for tests.
    /// </summary>
    internal async Task<TimeSpan> TurnAsync(CancellationToken cancellationToken, bool resync = false)
    {
        V1Pod? pod;
        PodWorkerState state;
        lock (_lock)
        {
            pod = _desired;
            state = State;
        }

        if (state == PodWorkerState.Syncing && pod is not null)
        {
            return await SyncAsync(pod, resync, cancellationToken).ConfigureAwait(false);
        }

        return await TerminateAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<TimeSpan> SyncAsync(V1Pod pod, bool resync, CancellationToken cancellationToken)
    {
        LogSyncing(Uid, pod.Namespace(), pod.Name());
        var observed = await _ctx.Inspector.InspectAsync(Uid, resync, cancellationToken).ConfigureAwait(false);
        var probes = _ctx.Probes.Results(pod, observed);
        var plan = PodPlanner.PlanSync(pod, observed, probes.Unhealthy);
        TimeSpan? retry = null;
        if (!plan.IsEmpty)
        {
            // As kubelet's SyncPod: the status is set before the slow work (pull, sandbox, start), so a
            // new pod shows Pending with its containers in ContainerCreating at once, not nothing.
            SetStatus(pod, observed, probes);
            retry = await _ctx.Syncer.RunAsync(pod, observed, plan, _waiting, cancellationToken).ConfigureAwait(false);
            observed = await _ctx.Inspector.InspectAsync(Uid, cancellationToken).ConfigureAwait(false);
            probes = _ctx.Probes.Results(pod, observed);
        }

        // A waiting reason only explains a container that is not running.
        foreach (var name in _waiting.Keys.ToList())
        {
            if (observed.Latest(name) is { IsRunning: true })
            {
                _waiting.Remove(name);
            }
        }

        _ctx.Probes.Sync(pod, observed);
        SetStatus(pod, observed, probes);
        return retry ?? _ctx.ResyncPeriod;
    }

    private void SetStatus(V1Pod pod, ObservedPod observed, ProbeResults probes)
    {
        var notes = new PodSyncNotes
        {
            Waiting = new Dictionary<string, ContainerWaiting>(_waiting),
            Ready = probes.Ready,
            Started = probes.Started,
            StartTime = StartTime,
        };
        var status = PodStatusComputer.Compute(pod, observed, notes, _ctx.Statuses.Get(Uid), _ctx.HostIp(), _ctx.Time.GetUtcNow());
        _ctx.Statuses.Set(Uid, status);
    }

    private async Task<TimeSpan> TerminateAsync(CancellationToken cancellationToken)
    {
        _ctx.Probes.RemovePod(Uid);
        var observed = await _ctx.Inspector.InspectAsync(Uid, cancellationToken).ConfigureAwait(false);
        var grace = _gracePeriodOverride
            ?? (_lastPod?.Spec?.TerminationGracePeriodSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null)
            ?? observed.Containers.Select(c => c.TerminationGracePeriod).FirstOrDefault(g => g is not null)
            ?? TimeSpan.FromSeconds(PodValidation.DefaultTerminationGracePeriodSeconds);
        if (observed.AnyRunning)
        {
            LogTerminating(Uid, observed.Namespace, observed.Name, grace.TotalSeconds);
            await _ctx.Syncer.KillPodAsync(observed, grace, cancellationToken).ConfigureAwait(false);
            observed = await _ctx.Inspector.InspectAsync(Uid, cancellationToken).ConfigureAwait(false);
        }

        foreach (var c in observed.Containers)
        {
            await _ctx.Runtime.RemoveContainerAsync(c.Id, cancellationToken).ConfigureAwait(false);
        }

        foreach (var s in observed.Sandboxes)
        {
            await _ctx.Runtime.StopPodSandboxAsync(s.Id, cancellationToken).ConfigureAwait(false);
            await _ctx.Runtime.RemovePodSandboxAsync(s.Id, cancellationToken).ConfigureAwait(false);
        }

        observed = await _ctx.Inspector.InspectAsync(Uid, cancellationToken).ConfigureAwait(false);
        if (observed.Sandboxes.Count > 0 || observed.Containers.Count > 0)
        {
            return TimeSpan.FromSeconds(1);
        }

        // Nothing is left: drop the pod's volumes, status and backoff state.
        TryDeleteDirectory(_ctx.Layout.PodDirectory(Uid));
        _ctx.Statuses.Remove(Uid);
        _ctx.CrashBackoff.ResetPrefix(Uid + "/");
        _ctx.ImageBackoff.ResetPrefix(Uid + "/");
        lock (_lock)
        {
            Transition(PodWorkerState.Terminated);
        }

        LogTerminated(Uid);
        return TimeSpan.Zero;
    }

    private void Transition(PodWorkerState to)
    {
        if (!PodWorkerTransitions.IsAllowed(State, to))
        {
            throw new InvalidOperationException($"pod worker {Uid}: transition {State} -> {to} is not allowed");
        }

        State = to;
    }

    private static void TryDeleteDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LoggerMessage(EventId = 600, Level = LogLevel.Warning, Message = "Pod worker {Uid}: turn failed, will retry: {Error}")]
    private partial void LogTurnFailed(string uid, string error);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Terminating pod {Uid} ({Namespace}/{Name}) with grace period {Seconds}s")]
    private partial void LogTerminating(string uid, string @namespace, string name, double seconds);

    [LoggerMessage(EventId = 603, Level = LogLevel.Debug, Message = "Pod worker {Uid} ({Namespace}/{Name}): sync turn")]
    private partial void LogSyncing(string uid, string @namespace, string name);

    [LoggerMessage(EventId = 602, Level = LogLevel.Information, Message = "Pod {Uid} terminated and removed")]
    private partial void LogTerminated(string uid);

}
