using EdgeKube.Agent.Cri;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Runtime;

/// <summary>
/// kubelet's PLEG: relists the runtime's sandboxes and containers every period, and tells the pod
/// workers which pods changed. Also the agent's view of whether the runtime answers at all.
/// </summary>
public sealed partial class RuntimeObserver(IContainerRuntime runtime, TimeProvider time, ILogger<RuntimeObserver> logger)
{
    private static readonly Dictionary<string, string> ManagedSelector = new(StringComparer.Ordinal) { [RuntimeLabels.ManagedBy] = RuntimeLabels.ManagedByValue };

    // What the last relist saw, by sandbox or container id, and the one being built; swapped after each relist
    // and reused, so a relist that finds nothing new allocates no collections.
    private Dictionary<(bool Sandbox, string Id), (string Uid, int State)> _seen = [];
    private Dictionary<(bool Sandbox, string Id), (string Uid, int State)> _next = [];
    private readonly Dictionary<string, string> _sandboxUids = new(StringComparer.Ordinal);
    private readonly HashSet<string> _uids = new(StringComparer.Ordinal);
    private readonly HashSet<string> _changed = new(StringComparer.Ordinal);

    /// <summary>Raised with a pod uid whenever that pod's sandboxes or containers changed state.</summary>
    public event Action<string>? PodChanged;

    /// <summary>
    /// Raised after every successful relist with every pod uid the runtime holds for us. The collection is
    /// the observer's own and is reused by the next relist: read it during the call, do not keep it.
    /// </summary>
    public event Action<IReadOnlyCollection<string>>? Relisted;

    public TimeSpan Period { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When the runtime last answered a relist; null before the first.</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>The last relist error, null when the last relist worked.</summary>
    public string? LastError { get; private set; }

    public long RelistCount { get; private set; }

    /// <summary>Relists started (their runtime calls made), successful or not.</summary>
    public long ListsStarted => Interlocked.Read(ref _listsStarted);

    /// <summary>
    /// <see cref="ListsStarted"/> as it was when the last successful relist started, set once that relist has reported every
    /// change it found: a relist that started after a moment <c>t</c> has succeeded when this exceeds the count read at <c>t</c>.
    /// </summary>
    public long LastGoodListStart => Interlocked.Read(ref _lastGoodListStart);

    private long _listsStarted;
    private long _lastGoodListStart;

    /// <summary>When the relist loop last finished a turn, whether the runtime answered or not (the agent's watchdog looks at it).</summary>
    public DateTimeOffset? LastTurn => Interlocked.Read(ref _lastTurnTicks) is > 0 and var t ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    private long _lastTurnTicks;

    public bool IsHealthy(TimeSpan tolerance) =>
        LastError is null && LastSuccess is { } ok && time.GetUtcNow() - ok <= tolerance;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Period, time);
        do
        {
            await RelistAsync(cancellationToken).ConfigureAwait(false);
            Interlocked.Exchange(ref _lastTurnTicks, time.GetUtcNow().UtcTicks);
        }
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>One relist; never throws except for cancellation. Not reentrant (the loop runs one at a time).</summary>
    public async Task RelistAsync(CancellationToken cancellationToken)
    {
        RuntimeListing listing;
        var started = Interlocked.Increment(ref _listsStarted);
        try
        {
            listing = await runtime.ListPodStatesAsync(ManagedSelector, cancellationToken).ConfigureAwait(false);
        }
        catch (RuntimeException e)
        {
            if (LastError is null)
            {
                LogRelistFailed(e.Message);
            }

            LastError = e.Message;
            return;
        }

        if (LastError is not null)
        {
            LogRelistRecovered();
        }

        LastError = null;
        LastSuccess = time.GetUtcNow();
        RelistCount++;

        _next.Clear();
        _sandboxUids.Clear();
        _uids.Clear();
        _changed.Clear();
        foreach (var s in listing.Sandboxes)
        {
            if (s.PodUid.Length > 0)
            {
                _sandboxUids[s.Id] = s.PodUid;
                _next[(true, s.Id)] = (s.PodUid, (int)s.State);
                _uids.Add(s.PodUid);
            }
        }

        foreach (var c in listing.Containers)
        {
            // A container whose sandbox was removed between the two list calls is gone next time.
            if (_sandboxUids.TryGetValue(c.PodSandboxId, out var uid))
            {
                _next[(false, c.Id)] = (uid, (int)c.State);
            }
        }

        foreach (var (key, now) in _next)
        {
            if (!_seen.TryGetValue(key, out var before) || before != now)
            {
                _changed.Add(now.Uid);
            }
        }

        foreach (var (key, before) in _seen)
        {
            if (!_next.ContainsKey(key))
            {
                _changed.Add(before.Uid);
            }
        }

        (_seen, _next) = (_next, _seen);
        foreach (var uid in _changed)
        {
            PodChanged?.Invoke(uid);
        }

        Relisted?.Invoke(_uids);
        Interlocked.Exchange(ref _lastGoodListStart, started);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Runtime relist failed: {Error}")]
    private partial void LogRelistFailed(string error);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Runtime answers again")]
    private partial void LogRelistRecovered();
}
