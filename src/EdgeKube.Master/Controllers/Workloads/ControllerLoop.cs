using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// Runs one controller: a full sync on start, on every change to the resources it watches (changes that
/// arrive during a sync coalesce into one more sync), at the time the last sync asked to look again (a
/// minReadySeconds or progress deadline, a job's back-off), and every resync period as a safety net.
/// </summary>
/// <remarks>
/// Controllers read the store directly, which is consistent: what a sync created is listed by the next one,
/// so no "expectations" bookkeeping as with kube-controller-manager's informer caches is needed.
/// </remarks>
public static class ControllerLoop
{
    public static readonly TimeSpan Resync = TimeSpan.FromSeconds(10);

    /// <param name="wakes">Which changes start a sync (all when null); the resync period still syncs regardless.</param>
    public static async Task RunAsync(IObjectStore store, TimeProvider time, IReadOnlyList<string> watches, Func<CancellationToken, Task<DateTimeOffset?>> sync, Action<Exception> onError, CancellationToken cancellationToken,
        Func<WatchEvent, bool>? wakes = null)
    {
        using var kick = new SemaphoreSlim(0, int.MaxValue);
        var watchers = watches.Select(r => KickOnChangesAsync(store, r, kick, wakes, cancellationToken)).ToList();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                DateTimeOffset? next = null;
                try
                {
                    next = await sync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is StoreException or ApiError or InvalidOperationException or FormatException or System.Text.Json.JsonException)
                {
                    onError(e);
                }

                var wait = Resync;
                if (next is { } at)
                {
                    var until = at - time.GetUtcNow();
                    wait = until < TimeSpan.Zero ? TimeSpan.Zero : until < wait ? until : wait;
                }

                using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timer.CancelAfter(wait);
                try
                {
                    await kick.WaitAsync(timer.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                }

                while (kick.CurrentCount > 0)
                {
                    await kick.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        await Task.WhenAll(watchers).ConfigureAwait(false);
    }

    /// <summary>
    /// For controllers that act only on objects with owners or finalizers, or on deletions (the garbage
    /// collector, job tracking): a change to anything else cannot give them work. Without this filter every
    /// status change of every plain pod made them relist all pods.
    /// </summary>
    public static bool OwnedOrFinalizing(WatchEvent e) =>
        e.Type == WatchEventType.Deleted
        || e.Object["metadata"] is not JsonObject metadata
        || metadata["ownerReferences"] is JsonArray { Count: > 0 }
        || metadata["finalizers"] is JsonArray { Count: > 0 }
        || metadata["deletionTimestamp"] is not null;

    private static async Task KickOnChangesAsync(IObjectStore store, string resource, SemaphoreSlim kick, Func<WatchEvent, bool>? wakes, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var e in store.WatchAsync(resource, null, store.CurrentResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    if (wakes is null || wakes(e))
                    {
                        kick.Release();
                    }
                }
            }
            catch (StoreException)
            {
                // Fell behind: the next sync lists everything anyway.
                kick.Release();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Writes <paramref name="status"/> as the object's status when it differs; false when the object changed or went meanwhile (the next sync sees it).</summary>
    public static async Task<bool> WriteStatusAsync(IObjectStore store, ApiResource resource, JsonObject obj, JsonObject status, CancellationToken cancellationToken)
    {
        if (JsonNode.DeepEquals(obj["status"], status))
        {
            return true;
        }

        obj["status"] = status;
        return await TryUpdateAsync(store, resource, obj, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stores a changed object if it is still the version read; false on a conflict or when it is gone.</summary>
    public static async Task<bool> TryUpdateAsync(IObjectStore store, ApiResource resource, JsonObject obj, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await store.UpdateAsync(new ObjectKey(resource.StoreName, obj.Namespace(), obj.Name()), obj, obj.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            obj.Metadata()["resourceVersion"] = stored.Metadata().Str("resourceVersion");
            return true;
        }
        catch (StoreException e) when (e.Kind is StoreErrorKind.Conflict or StoreErrorKind.NotFound)
        {
            return false;
        }
    }

    /// <summary>Sets spec.replicas and bumps metadata.generation, as an update through the API would.</summary>
    public static void SetReplicas(JsonObject obj, long replicas)
    {
        obj.Obj("spec")["replicas"] = replicas;
        obj.Metadata()["generation"] = Long(obj.Metadata()["generation"]) + 1;
    }

    public static bool Bool(JsonNode? node) => node is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    /// <summary>Syncs one object; an object the sync cannot read (a field of the wrong type) is logged and skipped, so it cannot stop the others.</summary>
    public static async Task<DateTimeOffset?> GuardAsync(Func<Task<DateTimeOffset?>> sync, JsonObject obj, Action<string, string> onError)
    {
        try
        {
            return await sync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or System.Text.Json.JsonException or OverflowException)
        {
            onError($"{obj.Namespace()}/{obj.Name()}", e.Message);
            return null;
        }
    }

    /// <summary>A whole number, whether parsed from JSON or set in this process as an int or a long; <paramref name="fallback"/> otherwise.</summary>
    public static long Long(JsonNode? node, long fallback = 0) => node switch
    {
        JsonValue v when v.TryGetValue<long>(out var n) => n,
        JsonValue v when v.TryGetValue<int>(out var i) => i,
        _ => fallback,
    };

    /// <summary>Sets a condition the way Kubernetes controllers do: lastTransitionTime changes only with status.</summary>
    public static void SetCondition(JsonObject status, JsonObject condition, bool keepUpdateTime = false)
    {
        var conditions = status["conditions"] as JsonArray ?? [];
        var type = condition.Str("type");
        var old = conditions.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == type);
        if (old is not null)
        {
            if (old.Str("status") == condition.Str("status"))
            {
                condition["lastTransitionTime"] = old["lastTransitionTime"]?.DeepClone();
            }

            if (keepUpdateTime && old.Str("reason") == condition.Str("reason") && old.Str("status") == condition.Str("status"))
            {
                condition["lastUpdateTime"] = old["lastUpdateTime"]?.DeepClone();
            }

            conditions[conditions.IndexOf(old)] = condition;
        }
        else
        {
            conditions.Add(condition);
        }

        status["conditions"] = conditions;
    }
}
