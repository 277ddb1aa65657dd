using System.Text;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Runtime;

/// <summary>
/// kubelet's PLEG: relists the runtime's sandboxes and containers every period, and tells the pod
/// workers which pods changed. Also the agent's view of whether the runtime answers at all.
/// </summary>
public sealed partial class RuntimeObserver(IContainerRuntime runtime, TimeProvider time, ILogger<RuntimeObserver> logger)
{
    private Dictionary<string, string> _fingerprints = new(StringComparer.Ordinal);

    /// <summary>Raised with a pod uid whenever that pod's sandboxes or containers changed state.</summary>
    public event Action<string>? PodChanged;

    /// <summary>Raised after every successful relist with every pod uid the runtime holds for us.</summary>
    public event Action<IReadOnlyCollection<string>>? Relisted;

    public TimeSpan Period { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When the runtime last answered a relist; null before the first.</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>The last relist error, null when the last relist worked.</summary>
    public string? LastError { get; private set; }

    public long RelistCount { get; private set; }

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

    /// <summary>One relist; never throws except for cancellation.</summary>
    public async Task RelistAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<PodSandbox> sandboxes;
        IReadOnlyList<Container> containers;
        try
        {
            var sandboxFilter = new PodSandboxFilter();
            sandboxFilter.LabelSelector.Add(RuntimeLabels.ManagedBy, RuntimeLabels.ManagedByValue);
            var containerFilter = new ContainerFilter();
            containerFilter.LabelSelector.Add(RuntimeLabels.ManagedBy, RuntimeLabels.ManagedByValue);
            sandboxes = await runtime.ListPodSandboxAsync(sandboxFilter, cancellationToken).ConfigureAwait(false);
            containers = await runtime.ListContainersAsync(containerFilter, cancellationToken).ConfigureAwait(false);
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

        var builders = new Dictionary<string, StringBuilder>(StringComparer.Ordinal);
        StringBuilder For(string uid) => builders.TryGetValue(uid, out var sb) ? sb : builders[uid] = new StringBuilder();
        foreach (var s in sandboxes.OrderBy(s => s.Id, StringComparer.Ordinal))
        {
            if (s.Labels.TryGetValue(RuntimeLabels.PodUid, out var uid))
            {
                For(uid).Append("s:").Append(s.Id).Append('=').Append((int)s.State).Append(';');
            }
        }

        foreach (var c in containers.OrderBy(c => c.Id, StringComparer.Ordinal))
        {
            if (c.Labels.TryGetValue(RuntimeLabels.PodUid, out var uid))
            {
                For(uid).Append("c:").Append(c.Id).Append('=').Append((int)c.State).Append(';');
            }
        }

        var next = builders.ToDictionary(kv => kv.Key, kv => kv.Value.ToString(), StringComparer.Ordinal);
        var previous = _fingerprints;
        _fingerprints = next;
        foreach (var (uid, print) in next)
        {
            if (!previous.TryGetValue(uid, out var old) || old != print)
            {
                PodChanged?.Invoke(uid);
            }
        }

        foreach (var uid in previous.Keys.Where(k => !next.ContainsKey(k)))
        {
            PodChanged?.Invoke(uid);
        }

        Relisted?.Invoke(next.Keys);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Runtime relist failed: {Error}")]
    private partial void LogRelistFailed(string error);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Runtime answers again")]
    private partial void LogRelistRecovered();
}
