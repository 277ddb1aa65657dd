using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Tests.Store;

/// <summary>
/// A real store with two things for tests of its readers: it counts lists per resource, and it can hold back
/// watch events (a reader that falls behind, without waiting for a slow machine to make one).
/// </summary>
internal sealed class RecordingObjectStore(IObjectStore inner) : IObjectStore
{
    private readonly ConcurrentDictionary<string, int> _lists = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _watchCalls = new(0, int.MaxValue);
    private volatile TaskCompletionSource _gate = Open();

    public long CurrentResourceVersion => inner.CurrentResourceVersion;

    /// <summary>How many times <paramref name="resource"/> was listed (in any namespace).</summary>
    public int Lists(string resource) => _lists.GetValueOrDefault(resource);

    /// <summary>From now on a watch delivers nothing: a change it receives waits, and later ones fill its buffer.</summary>
    public void HoldWatches() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseWatches() => _gate.TrySetResult();

    /// <summary>Completes when a watch was registered (once per call of <see cref="WatchAsync"/>).</summary>
    public async Task WatchCalledAsync(TimeSpan timeout) => Assert.True(await _watchCalls.WaitAsync(timeout), "no watch was started");

    public Task<JsonObject?> GetAsync(ObjectKey key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

    public Task<StoreList> ListAsync(string resource, string? ns, CancellationToken cancellationToken = default)
    {
        _lists.AddOrUpdate(resource, 1, (_, n) => n + 1);
        return inner.ListAsync(resource, ns, cancellationToken);
    }

    public Task<JsonObject> CreateAsync(ObjectKey key, JsonObject obj, CancellationToken cancellationToken = default) => inner.CreateAsync(key, obj, cancellationToken);

    public Task<JsonObject> UpdateAsync(ObjectKey key, JsonObject obj, long? expectedResourceVersion = null, CancellationToken cancellationToken = default) =>
        inner.UpdateAsync(key, obj, expectedResourceVersion, cancellationToken);

    public Task<JsonObject> DeleteAsync(ObjectKey key, long? expectedResourceVersion = null, CancellationToken cancellationToken = default) =>
        inner.DeleteAsync(key, expectedResourceVersion, cancellationToken);

    public IAsyncEnumerable<WatchEvent> WatchAsync(string resource, string? ns, long sinceResourceVersion, CancellationToken cancellationToken = default)
    {
        // Registered now, as the contract says, so the events a held watch misses are really missed.
        var watch = inner.WatchAsync(resource, ns, sinceResourceVersion, cancellationToken);
        _watchCalls.Release();
        return GatedAsync(watch, cancellationToken);
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private static TaskCompletionSource Open()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async IAsyncEnumerable<WatchEvent> GatedAsync(IAsyncEnumerable<WatchEvent> watch, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var e in watch)
        {
            try
            {
                await _gate.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Cancelling ends a watch normally.
                yield break;
            }

            yield return e;
        }
    }
}
