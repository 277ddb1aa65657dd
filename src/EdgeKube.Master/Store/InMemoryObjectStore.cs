using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Store;

/// <summary>An <see cref="IObjectStore"/> kept in memory, with the same rules as <see cref="SqliteObjectStore"/>; for tests of controllers.</summary>
/// <remarks>
/// Writers take one lock; readers take none: they read an immutable snapshot of all objects and the
/// resourceVersion it is consistent with, which each write replaces whole.
/// </remarks>
public sealed class InMemoryObjectStore : IObjectStore
{
    private static readonly ImmutableSortedDictionary<NamespacedName, Entry> NoObjects =
        ImmutableSortedDictionary.Create<NamespacedName, Entry>(NamespacedNameComparer.Instance);

    private readonly Lock _writeLock = new();
    private readonly WatchHub _hub;
    private volatile Snapshot _snapshot = new(ImmutableDictionary.Create<string, ImmutableSortedDictionary<NamespacedName, Entry>>(StringComparer.Ordinal), 0);
    private volatile bool _disposed;

    public InMemoryObjectStore()
        : this(StoreLimits.Default)
    {
    }

    internal InMemoryObjectStore(StoreLimits limits)
    {
        _hub = new WatchHub(0, limits);
    }

    public long CurrentResourceVersion => _snapshot.ResourceVersion;

    internal int WatcherCount => _hub.WatcherCount;

    public Task<JsonObject?> GetAsync(ObjectKey key, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        return StoreTask.Run(() =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _snapshot.Find(key) is { } entry ? ObjectJson.Parse(entry.Json) : null;
        }, cancellationToken);
    }

    public Task<StoreList> ListAsync(string resource, string? ns, CancellationToken cancellationToken = default) =>
        ListAsync(resource, ns, static _ => true, cancellationToken);

    public Task<IReadOnlyList<(ObjectKey Key, long ResourceVersion)>> ListVersionsAsync(string resource, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        ObjectDisposedException.ThrowIf(_disposed, this);
        IReadOnlyList<(ObjectKey, long)> versions = [.. _snapshot.Of(resource).Select(e => (new ObjectKey(resource, e.Key.Namespace, e.Key.Name), e.Value.ResourceVersion))];
        return Task.FromResult(versions);
    }

    public Task<StoreList> ListAsync(string resource, string? ns, StoredJsonFilter keep, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        return StoreTask.Run(() =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var snapshot = _snapshot;
            var items = new List<JsonObject>();
            foreach (var (name, entry) in snapshot.Of(resource))
            {
                if ((ns is null || string.Equals(name.Namespace, ns, StringComparison.Ordinal)) && keep(entry.Json))
                {
                    items.Add(ObjectJson.Parse(entry.Json));
                }
            }

            return new StoreList(items, snapshot.ResourceVersion);
        }, cancellationToken);
    }

    public Task<JsonObject> CreateAsync(ObjectKey key, JsonObject obj, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        ArgumentNullException.ThrowIfNull(obj);
        return StoreTask.Run(() => Write(snapshot =>
        {
            if (snapshot.Find(key) is not null)
            {
                throw StoreErrors.AlreadyExists(key);
            }

            return Put(snapshot, key, obj, WatchEventType.Added);
        }), cancellationToken);
    }

    public Task<JsonObject> UpdateAsync(ObjectKey key, JsonObject obj, long? expectedResourceVersion = null, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        ArgumentNullException.ThrowIfNull(obj);
        return StoreTask.Run(() => Write(snapshot =>
        {
            StoreErrors.CheckReplace(key, snapshot.Find(key)?.ResourceVersion, expectedResourceVersion, delete: false);
            return Put(snapshot, key, obj, WatchEventType.Modified);
        }), cancellationToken);
    }

    public Task<JsonObject> DeleteAsync(ObjectKey key, long? expectedResourceVersion = null, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        return StoreTask.Run(() => Write(snapshot =>
        {
            var entry = snapshot.Find(key);
            StoreErrors.CheckReplace(key, entry?.ResourceVersion, expectedResourceVersion, delete: true);
            var resourceVersion = snapshot.ResourceVersion + 1;
            var removed = ObjectJson.Stamp(ObjectJson.Parse(entry!.Json), resourceVersion);
            var change = new StoredChange(WatchEventType.Deleted, key, resourceVersion, ObjectJson.ToUtf8(removed));
            return (snapshot.Without(key, resourceVersion), change, removed);
        }), cancellationToken);
    }

    public IAsyncEnumerable<WatchEvent> WatchAsync(string resource, string? ns, long sinceResourceVersion, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _hub.Watch(resource, ns, sinceResourceVersion, cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        lock (_writeLock)
        {
            _disposed = true;
            _hub.Close();
        }

        return ValueTask.CompletedTask;
    }

    private static (Snapshot Next, StoredChange Change, JsonObject Result) Put(Snapshot snapshot, ObjectKey key, JsonObject obj, WatchEventType type)
    {
        var resourceVersion = snapshot.ResourceVersion + 1;
        var stored = ObjectJson.Stamp(obj, resourceVersion);
        var json = ObjectJson.ToUtf8(stored);
        return (snapshot.With(key, new Entry(resourceVersion, json)), new StoredChange(type, key, resourceVersion, json), stored);
    }

    /// <summary>One write: compute the next snapshot, install it, then publish, all under the write lock so changes reach watchers in order.</summary>
    private JsonObject Write(Func<Snapshot, (Snapshot Next, StoredChange Change, JsonObject Result)> write)
    {
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var (next, change, result) = write(_snapshot);
            _snapshot = next;
            _hub.Publish(change);
            return result;
        }
    }

    private sealed record Entry(long ResourceVersion, byte[] Json);

    private readonly record struct NamespacedName(string Namespace, string Name);

    /// <summary>Namespace then name, ordinal: the order SQLite's BINARY collation gives Kubernetes' ASCII names.</summary>
    private sealed class NamespacedNameComparer : IComparer<NamespacedName>
    {
        public static readonly NamespacedNameComparer Instance = new();

        public int Compare(NamespacedName x, NamespacedName y)
        {
            var byNamespace = string.CompareOrdinal(x.Namespace, y.Namespace);
            return byNamespace != 0 ? byNamespace : string.CompareOrdinal(x.Name, y.Name);
        }
    }

    private sealed record Snapshot(ImmutableDictionary<string, ImmutableSortedDictionary<NamespacedName, Entry>> Resources, long ResourceVersion)
    {
        public ImmutableSortedDictionary<NamespacedName, Entry> Of(string resource) =>
            Resources.TryGetValue(resource, out var objects) ? objects : NoObjects;

        public Entry? Find(ObjectKey key) =>
            Of(key.Resource).TryGetValue(new NamespacedName(key.Namespace, key.Name), out var entry) ? entry : null;

        public Snapshot With(ObjectKey key, Entry entry) =>
            new(Resources.SetItem(key.Resource, Of(key.Resource).SetItem(new NamespacedName(key.Namespace, key.Name), entry)), entry.ResourceVersion);

        public Snapshot Without(ObjectKey key, long resourceVersion) =>
            new(Resources.SetItem(key.Resource, Of(key.Resource).Remove(new NamespacedName(key.Namespace, key.Name))), resourceVersion);
    }
}
