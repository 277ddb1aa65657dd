namespace EdgeKube.Agent.Pods;

/// <summary>
/// kubelet's flowcontrol backoff, shared by CrashLoopBackOff and ImagePullBackOff: the delay starts at
/// <c>initial</c>, doubles on each failure up to <c>max</c>, and starts over once nothing has failed
/// for twice <c>max</c> (10 minutes with kubelet's 5-minute cap). Thread-safe.
/// </summary>
public sealed class Backoff(TimeSpan initial, TimeSpan max, TimeProvider time)
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>kubelet's container restart backoff: 10 s doubling to 5 min.</summary>
    public static Backoff ForCrashLoop(TimeProvider time) => new(TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5), time);

    /// <summary>kubelet's image pull backoff: 10 s doubling to 5 min.</summary>
    public static Backoff ForImagePull(TimeProvider time) => new(TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5), time);

    public TimeSpan Initial => initial;

    public TimeSpan Max => max;

    /// <summary>Records a failure at <paramref name="eventTime"/> and returns the delay before the next try.</summary>
    public TimeSpan Next(string key, DateTimeOffset eventTime)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out var entry) || HasExpired(entry, eventTime))
            {
                entry = new Entry(initial, eventTime);
            }
            else
            {
                var doubled = entry.Delay * 2;
                entry = new Entry(doubled > max ? max : doubled, eventTime);
            }

            _entries[key] = entry;
            return entry.Delay;
        }
    }

    /// <summary>True while the current delay, counted from <paramref name="eventTime"/>, has not passed.</summary>
    public bool IsInBackoffSince(string key, DateTimeOffset eventTime) => RemainingSince(key, eventTime) > TimeSpan.Zero;

    /// <summary>How much of the delay counted from <paramref name="eventTime"/> is left (zero when none).</summary>
    public TimeSpan RemainingSince(string key, DateTimeOffset eventTime)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                return TimeSpan.Zero;
            }

            var now = time.GetUtcNow();
            if (HasExpired(entry, now))
            {
                return TimeSpan.Zero;
            }

            var left = entry.Delay - (now - eventTime);
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    /// <summary>kubelet's IsInBackOffSinceUpdate: true while the delay counted from the last failure has not passed.</summary>
    public bool IsInBackoffSinceUpdate(string key)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                return false;
            }

            var now = time.GetUtcNow();
            return !HasExpired(entry, now) && now - entry.LastUpdate < entry.Delay;
        }
    }

    /// <summary>The current delay for <paramref name="key"/>, or zero.</summary>
    public TimeSpan Current(string key)
    {
        lock (_entries)
        {
            return _entries.TryGetValue(key, out var entry) && !HasExpired(entry, time.GetUtcNow()) ? entry.Delay : TimeSpan.Zero;
        }
    }

    public void Reset(string key)
    {
        lock (_entries)
        {
            _entries.Remove(key);
        }
    }

    /// <summary>Forgets every key that starts with <paramref name="prefix"/> (a pod that is gone).</summary>
    public void ResetPrefix(string prefix)
    {
        lock (_entries)
        {
            foreach (var key in _entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
            {
                _entries.Remove(key);
            }
        }
    }

    private bool HasExpired(Entry entry, DateTimeOffset now) => now - entry.LastUpdate > max * 2;

    private readonly record struct Entry(TimeSpan Delay, DateTimeOffset LastUpdate);
}
