using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace EdgeKube.Master.Store;

/// <summary>One committed change, kept as UTF-8 JSON so each watcher gets its own fresh object (parsed when it reads it).</summary>
internal sealed record StoredChange(WatchEventType Type, ObjectKey Key, long ResourceVersion, byte[] Json)
{
    public WatchEvent ToEvent() => new(Type, Key, ResourceVersion, Json);
}

/// <summary>
/// The recent history of changes and the live watchers, shared by both stores. Stores publish each change
/// after its commit while still holding their write lock, so changes arrive here in resourceVersion order.
/// </summary>
/// <remarks>
/// History is a ring of the last <see cref="StoreLimits.HistoryCapacity"/> changes; everything after
/// <c>_oldest</c> is in it, so a watch from any resourceVersion at or after <c>_oldest</c> can be served.
/// After a restart the ring starts empty with <c>_oldest</c> at the store's resourceVersion: a watch from
/// before the restart gets Expired, a watch from the current resourceVersion works.
/// </remarks>
internal sealed class WatchHub
{
    private readonly Lock _lock = new();
    private readonly StoredChange[] _ring;
    private readonly int _watcherCapacity;
    private readonly List<Watcher> _watchers = [];
    private int _start;
    private int _count;
    private long _oldest;
    private long _latest;
    private bool _closed;

    public WatchHub(long resourceVersion, StoreLimits limits)
    {
        limits.Validate();
        _ring = new StoredChange[limits.HistoryCapacity];
        _watcherCapacity = limits.WatcherBufferCapacity;
        _oldest = resourceVersion;
        _latest = resourceVersion;
    }

    /// <summary>Watchers currently registered (for tests: a cancelled or expired watch must leave).</summary>
    public int WatcherCount
    {
        get
        {
            lock (_lock)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>Records a committed change and hands it to matching watchers; never blocks on a slow one.</summary>
    public void Publish(StoredChange change)
    {
        lock (_lock)
        {
            Debug.Assert(change.ResourceVersion > _latest, "changes must be published in resourceVersion order");
            if (_closed)
            {
                return;
            }

            if (_count == _ring.Length)
            {
                _oldest = _ring[_start].ResourceVersion;
                _ring[_start] = change;
                _start = (_start + 1) % _ring.Length;
            }
            else
            {
                _ring[(_start + _count) % _ring.Length] = change;
                _count++;
            }

            _latest = change.ResourceVersion;
            for (var i = _watchers.Count - 1; i >= 0; i--)
            {
                var watcher = _watchers[i];
                if (watcher.Wants(change) && !watcher.TryWrite(change))
                {
                    // Waiting for it would stall every writer; the API server drops such watchers too.
                    watcher.Expire(StoreErrors.FellBehind(watcher.Resource, _watcherCapacity));
                    _watchers.RemoveAt(i);
                }
            }
        }
    }

    /// <summary>
    /// Registers a watcher now (so "from now" means the moment of the call) and returns its events:
    /// history after <paramref name="sinceResourceVersion"/>, then live changes.
    /// </summary>
    public IAsyncEnumerable<WatchEvent> Watch(string resource, string? ns, long sinceResourceVersion, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        ArgumentOutOfRangeException.ThrowIfNegative(sinceResourceVersion);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            var since = sinceResourceVersion == 0 ? _latest : sinceResourceVersion;
            var watcher = new Watcher(resource, ns, since, _watcherCapacity);
            if (since < _oldest)
            {
                // Reported by the enumeration, not thrown here, like every other way a watch ends.
                watcher.Expire(StoreErrors.TooOld(since, _oldest));
                return ReadAsync(watcher, [], cancellationToken);
            }

            var replay = new List<StoredChange>();
            for (var i = FirstAfter(since); i < _count; i++)
            {
                var change = At(i);
                if (watcher.Wants(change))
                {
                    replay.Add(change);
                }
            }

            _watchers.Add(watcher);
            return ReadAsync(watcher, replay, cancellationToken);
        }
    }

    /// <summary>Ends every watch normally (the store is closing); clients re-watch and find it gone.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            foreach (var watcher in _watchers)
            {
                watcher.Complete();
            }

            _watchers.Clear();
        }
    }

    private StoredChange At(int index) => _ring[(_start + index) % _ring.Length];

    private int FirstAfter(long resourceVersion)
    {
        int low = 0, high = _count;
        while (low < high)
        {
            var mid = (low + high) / 2;
            if (At(mid).ResourceVersion > resourceVersion)
            {
                high = mid;
            }
            else
            {
                low = mid + 1;
            }
        }

        return low;
    }

    private void Remove(Watcher watcher)
    {
        lock (_lock)
        {
            _watchers.Remove(watcher);
        }
    }

    private async IAsyncEnumerable<WatchEvent> ReadAsync(Watcher watcher, List<StoredChange> replay, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // A second enumeration would read the same channel; the watch belongs to one reader.
        watcher.Claim();
        try
        {
            foreach (var change in replay)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    yield break;
                }

                watcher.ThrowIfExpired();
                yield return change.ToEvent();
            }

            while (await watcher.WaitAsync(cancellationToken).ConfigureAwait(false))
            {
                while (watcher.TryRead(out var change))
                {
                    yield return change.ToEvent();
                }
            }

            watcher.ThrowIfExpired();
        }
        finally
        {
            Remove(watcher);
        }
    }

    /// <summary>One watch: its filter and its bounded queue of live changes.</summary>
    private sealed class Watcher(string resource, string? ns, long since, int capacity)
    {
        private readonly Channel<StoredChange> _channel = Channel.CreateBounded<StoredChange>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            // Only Publish writes, under the hub's lock.
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

        private volatile StoreException? _expired;
        private int _claimed;

        public string Resource => resource;

        public bool Wants(StoredChange change) =>
            change.ResourceVersion > since
            && string.Equals(change.Key.Resource, resource, StringComparison.Ordinal)
            && (ns is null || string.Equals(change.Key.Namespace, ns, StringComparison.Ordinal));

        public bool TryWrite(StoredChange change) => _channel.Writer.TryWrite(change);

        public void Expire(StoreException error)
        {
            _expired = error;
            _channel.Writer.TryComplete();
        }

        public void Complete() => _channel.Writer.TryComplete();

        public void Claim()
        {
            if (Interlocked.Exchange(ref _claimed, 1) != 0)
            {
                throw new InvalidOperationException("A watch can be enumerated only once.");
            }
        }

        public void ThrowIfExpired()
        {
            if (_expired is { } error)
            {
                throw error;
            }
        }

        /// <summary>False when the watch is over: cancelled (a normal end), closed, or expired.</summary>
        public async ValueTask<bool> WaitAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await _channel.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }

        /// <summary>The next buffered change; once the watcher fell behind, its buffer is not worth delivering.</summary>
        public bool TryRead([MaybeNullWhen(false)] out StoredChange change)
        {
            ThrowIfExpired();
            return _channel.Reader.TryRead(out change);
        }
    }
}
