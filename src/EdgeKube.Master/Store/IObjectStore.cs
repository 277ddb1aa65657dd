using System.Text.Json.Nodes;

namespace EdgeKube.Master.Store;

/// <summary>
/// Where the master keeps every API object, with Kubernetes' optimistic concurrency: one cluster-wide,
/// strictly increasing <c>resourceVersion</c>, stamped into each stored object's
/// <c>metadata.resourceVersion</c>, and watches that resume from a resourceVersion.
/// Implemented by <see cref="SqliteObjectStore"/> (embedded, the default) and <see cref="InMemoryObjectStore"/> for unit tests.
/// </summary>
/// <remarks>
/// Rules every implementation keeps:
/// <list type="bullet">
/// <item>Objects are JSON (a Kubernetes object with apiVersion, kind, metadata); the store never
/// interprets them beyond <c>metadata.resourceVersion</c>, which it sets.</item>
/// <item>Returned <see cref="JsonObject"/>s are fresh copies: callers may mutate them.</item>
/// <item>Every write gets a resourceVersion greater than any before it, also across restarts.</item>
/// <item>A watch from resourceVersion R delivers, in order, every change after R to the matching
/// objects, then follows new ones; R older than the store's history throws <see cref="StoreException"/>
/// with <see cref="StoreErrorKind.Expired"/> (HTTP 410 Gone, as etcd compaction).</item>
/// </list>
/// </remarks>
public interface IObjectStore : IAsyncDisposable
{
    /// <summary>The resourceVersion of the latest write.</summary>
    long CurrentResourceVersion { get; }

    /// <summary>The object, or null when it does not exist.</summary>
    Task<JsonObject?> GetAsync(ObjectKey key, CancellationToken cancellationToken = default);

    /// <summary>All objects of a resource (in one namespace, or all when <paramref name="ns"/> is null), ordered by namespace then name, and the resourceVersion the list is consistent with.</summary>
    Task<StoreList> ListAsync(string resource, string? ns, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="ListAsync(string, string?, CancellationToken)"/>, for a caller that needs only some objects:
    /// those whose stored UTF-8 JSON fails <paramref name="keep"/> may be left out, unparsed. The result holds
    /// at least every object that passes, so <paramref name="keep"/> must pass every object the caller needs
    /// (a test on the raw text, such as <see cref="StoredJson.Mentions"/>, may pass more).
    /// </summary>
    Task<StoreList> ListAsync(string resource, string? ns, StoredJsonFilter keep, CancellationToken cancellationToken = default) =>
        ListAsync(resource, ns, cancellationToken);

    /// <summary>
    /// The keys and resourceVersions of all objects of a resource, without their bodies: for a caller that
    /// keeps what it derived from each object and reads again (<see cref="GetAsync"/>) only those that changed.
    /// </summary>
    async Task<IReadOnlyList<(ObjectKey Key, long ResourceVersion)>> ListVersionsAsync(string resource, CancellationToken cancellationToken = default) =>
        [.. (await ListAsync(resource, null, cancellationToken).ConfigureAwait(false)).Items.Select(o =>
            (new ObjectKey(resource, o["metadata"]?["namespace"]?.GetValue<string>() ?? string.Empty, o["metadata"]?["name"]?.GetValue<string>() ?? string.Empty),
             long.TryParse(o["metadata"]?["resourceVersion"]?.GetValue<string>(), out var rv) ? rv : 0))];

    /// <summary>Stores a new object; throws <see cref="StoreErrorKind.AlreadyExists"/> when the key is taken. Returns it with its resourceVersion.</summary>
    Task<JsonObject> CreateAsync(ObjectKey key, JsonObject obj, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces an object; throws <see cref="StoreErrorKind.NotFound"/> when missing and
    /// <see cref="StoreErrorKind.Conflict"/> when <paramref name="expectedResourceVersion"/> is given and
    /// is not the stored one. Returns it with its new resourceVersion.
    /// </summary>
    Task<JsonObject> UpdateAsync(ObjectKey key, JsonObject obj, long? expectedResourceVersion = null, CancellationToken cancellationToken = default);

    /// <summary>Removes an object; throws NotFound / Conflict as <see cref="UpdateAsync"/>. Returns the object as it was, with the resourceVersion of its deletion.</summary>
    Task<JsonObject> DeleteAsync(ObjectKey key, long? expectedResourceVersion = null, CancellationToken cancellationToken = default);

    /// <summary>Changes to a resource (one namespace or all) after <paramref name="sinceResourceVersion"/> (0: from now on).</summary>
    /// <remarks>
    /// The watch is registered by this call, so "from now on" is the moment of the call; enumerate it once.
    /// Cancelling ends the enumeration normally (no exception), as a Kubernetes watch that times out just ends;
    /// so does disposing the store. It ends with <see cref="StoreErrorKind.Expired"/> when
    /// <paramref name="sinceResourceVersion"/> is older than the kept history, or when the reader falls too
    /// far behind the writers (writers never wait for a watcher): list again and watch from the list's version.
    /// </remarks>
    IAsyncEnumerable<WatchEvent> WatchAsync(string resource, string? ns, long sinceResourceVersion, CancellationToken cancellationToken = default);
}

/// <summary>A test on an object's stored UTF-8 JSON, made before it is parsed.</summary>
public delegate bool StoredJsonFilter(ReadOnlySpan<byte> json);

/// <summary>Filters on stored JSON text.</summary>
public static class StoredJson
{
    /// <summary>
    /// Passes an object whose JSON has one of <paramref name="properties"/> as a property name anywhere in it
    /// (or as that exact string value: a superset, never less).
    /// </summary>
    public static StoredJsonFilter Mentions(params string[] properties)
    {
        var needles = properties.Select(p => System.Text.Encoding.UTF8.GetBytes("\"" + p + "\"")).ToArray();
        return json =>
        {
            foreach (var needle in needles)
            {
                if (json.IndexOf(needle) >= 0)
                {
                    return true;
                }
            }

            return false;
        };
    }
}

/// <summary>A stored object's identity: the resource (plural, lower-case, with its group for non-core: "pods", "deployments.apps"), namespace ("" when cluster-scoped) and name.</summary>
public readonly record struct ObjectKey(string Resource, string Namespace, string Name)
{
    public override string ToString() => Namespace.Length == 0 ? $"{Resource}/{Name}" : $"{Resource}/{Namespace}/{Name}";
}

/// <summary>The result of a list: items and the resourceVersion they are consistent with.</summary>
public sealed record StoreList(IReadOnlyList<JsonObject> Items, long ResourceVersion);

public enum WatchEventType
{
    Added,
    Modified,
    Deleted,
}

/// <summary>One change seen by a watch. For Deleted, the object as it was, with the deletion's resourceVersion.</summary>
/// <remarks>
/// A store's event holds the committed UTF-8 JSON and parses it on the first read of <see cref="Object"/>:
/// most watchers (the controllers' wake-ups, the scheduler's) look at few events' objects, and a parse per
/// watcher per change was a large part of the master's allocations at scale. Each watcher gets its own
/// event, so its object is still a fresh copy it may mutate; an event is read by one watcher only.
/// </remarks>
public sealed class WatchEvent
{
    private readonly byte[]? _json;
    private JsonObject? _object;

    public WatchEvent(WatchEventType type, ObjectKey key, long resourceVersion, JsonObject obj)
    {
        Type = type;
        Key = key;
        ResourceVersion = resourceVersion;
        _object = obj;
    }

    internal WatchEvent(WatchEventType type, ObjectKey key, long resourceVersion, byte[] json)
    {
        Type = type;
        Key = key;
        ResourceVersion = resourceVersion;
        _json = json;
    }

    public WatchEventType Type { get; }

    public ObjectKey Key { get; }

    public long ResourceVersion { get; }

    /// <summary>The object, parsed on first read.</summary>
    public JsonObject Object => _object ??= ObjectJson.Parse(_json!);
}

public enum StoreErrorKind
{
    NotFound,
    AlreadyExists,
    Conflict,
    Expired,
}

/// <summary>A store operation failed; the API server maps <see cref="Kind"/> to Kubernetes' status reasons (404, 409, 409, 410).</summary>
public sealed class StoreException(StoreErrorKind kind, string message) : Exception(message)
{
    public StoreErrorKind Kind { get; } = kind;
}
