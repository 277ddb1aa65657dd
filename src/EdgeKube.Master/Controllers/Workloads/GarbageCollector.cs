using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>
/// kube-controller-manager's garbage collector over metadata.ownerReferences: an object whose owners are all
/// gone is deleted (Background propagation, the default: a Deployment's ReplicaSets and their pods follow it);
/// an owner deleted with propagationPolicy=Foreground keeps its <c>foregroundDeletion</c> finalizer until its
/// dependents are gone; one deleted with Orphan has its dependents' references to it removed, and they stay.
/// </summary>
public sealed partial class GarbageCollector(ObjectWriter writer, ILogger<GarbageCollector> logger)
{
    public static readonly IReadOnlyList<string> Watches = ["deployments.apps", "replicasets.apps", "daemonsets.apps", "jobs.batch", "pods"];

    public Task RunAsync(CancellationToken cancellationToken) =>
        ControllerLoop.RunAsync(writer.Store, writer.Time, Watches, SyncAllAsync, e => LogSyncFailed(e.Message), cancellationToken, ControllerLoop.OwnedOrFinalizing);

    /// <summary>One pass over every object that has or may be an owner.</summary>
    public async Task<DateTimeOffset?> SyncAllAsync(CancellationToken cancellationToken)
    {
        var objects = new List<(ApiResource Resource, JsonObject Obj)>();
        foreach (var resource in ApiResources.All.Where(r => r.Stored && r.Kind != "Event"))
        {
            // Of the pods and nodes, only those with owners, finalizers or a deletion: a pass runs every resync
            // period, and parsing every pod and node of the cluster for it was a large part of the master's
            // allocations at scale. One left out can still be an owner (a node owns its lease): an owner missing
            // here is looked up before anything is deleted.
            var list = resource.Kind is "Pod" or "Node"
                ? await writer.Store.ListAsync(resource.StoreName, null, OfInterest, cancellationToken).ConfigureAwait(false)
                : await writer.Store.ListAsync(resource.StoreName, null, cancellationToken).ConfigureAwait(false);
            foreach (var obj in list.Items)
            {
                objects.Add((resource, obj));
            }
        }

        var byUid = objects.GroupBy(o => o.Obj.Uid()).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var dependents = new Dictionary<string, List<(ApiResource Resource, JsonObject Obj)>>(StringComparer.Ordinal);
        foreach (var o in objects)
        {
            foreach (var owner in OwnerUids(o.Obj))
            {
                if (!dependents.TryGetValue(owner, out var list))
                {
                    dependents[owner] = list = [];
                }

                list.Add(o);
            }
        }

        foreach (var (resource, obj) in objects)
        {
            var finalizers = ObjectWriter.Finalizers(obj);
            if (!Pods.IsTerminating(obj) || finalizers.Count == 0)
            {
                continue;
            }

            var mine = dependents.GetValueOrDefault(obj.Uid()) ?? [];
            if (finalizers.Contains(ObjectWriter.OrphanFinalizer))
            {
                await OrphanAsync(obj, mine, cancellationToken).ConfigureAwait(false);
                await ReleaseAsync(resource, obj, ObjectWriter.OrphanFinalizer, cancellationToken).ConfigureAwait(false);
            }
            else if (finalizers.Contains(ObjectWriter.ForegroundFinalizer))
            {
                if (mine.Count == 0)
                {
                    await ReleaseAsync(resource, obj, ObjectWriter.ForegroundFinalizer, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                foreach (var (depResource, dep) in mine.Where(d => !Pods.IsTerminating(d.Obj)))
                {
                    // Foreground all the way down: a ReplicaSet waits for its pods before the Deployment goes.
                    await DeleteAsync(depResource, dep, depResource.Kind == "Pod" ? null : "Foreground", cancellationToken).ConfigureAwait(false);
                }
            }
        }

        foreach (var (resource, obj) in objects)
        {
            var refs = (obj.Metadata()["ownerReferences"] as JsonArray ?? []).OfType<JsonObject>().ToList();
            if (refs.Count == 0 || Pods.IsTerminating(obj))
            {
                continue;
            }

            // Owners of a kind this server does not keep (a CRD of another controller) are assumed present.
            var allGone = true;
            foreach (var r in refs)
            {
                if (ApiResources.ByKind(r.Str("apiVersion") ?? string.Empty, r.Str("kind") ?? string.Empty) is not { } ownerResource
                    || byUid.ContainsKey(r.Str("uid") ?? string.Empty)
                    || await ExistsAsync(ownerResource, obj.Namespace(), r, cancellationToken).ConfigureAwait(false))
                {
                    allGone = false;
                    break;
                }
            }

            if (allGone)
            {
                LogCollected(resource.Kind, obj.Namespace(), obj.Name());
                await DeleteAsync(resource, obj, null, cancellationToken).ConfigureAwait(false);
            }
        }

        return null;
    }

    private static readonly Store.StoredJsonFilter OfInterest = Store.StoredJson.Mentions("ownerReferences", "finalizers", "deletionTimestamp");

    /// <summary>Whether the owner a reference names is in the store (same uid), for owners the pass did not list.</summary>
    private async Task<bool> ExistsAsync(ApiResource ownerResource, string dependentNamespace, JsonObject reference, CancellationToken cancellationToken)
    {
        var key = new Store.ObjectKey(ownerResource.StoreName, ownerResource.Namespaced ? dependentNamespace : string.Empty, reference.Str("name") ?? string.Empty);
        return key.Name.Length > 0
            && await writer.Store.GetAsync(key, cancellationToken).ConfigureAwait(false) is { } owner
            && owner.Uid() == reference.Str("uid");
    }

    private static IEnumerable<string> OwnerUids(JsonObject obj) =>
        (obj.Metadata()["ownerReferences"] as JsonArray ?? []).OfType<JsonObject>().Select(r => r.Str("uid")).OfType<string>();

    private async Task OrphanAsync(JsonObject owner, List<(ApiResource Resource, JsonObject Obj)> dependents, CancellationToken cancellationToken)
    {
        foreach (var (resource, dep) in dependents)
        {
            var refs = dep.Metadata()["ownerReferences"] as JsonArray ?? [];
            foreach (var r in refs.OfType<JsonObject>().Where(r => r.Str("uid") == owner.Uid()).ToList())
            {
                refs.Remove(r);
            }

            if (refs.Count == 0)
            {
                dep.Metadata().Remove("ownerReferences");
            }

            await ControllerLoop.TryUpdateAsync(writer.Store, resource, dep, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ReleaseAsync(ApiResource resource, JsonObject obj, string finalizer, CancellationToken cancellationToken)
    {
        var left = ObjectWriter.Finalizers(obj).Where(f => f != finalizer).ToList();
        if (left.Count == 0)
        {
            obj.Metadata().Remove("finalizers");
        }
        else
        {
            obj.Metadata()["finalizers"] = new JsonArray([.. left.Select(f => (JsonNode)f)]);
        }

        if (await ControllerLoop.TryUpdateAsync(writer.Store, resource, obj, cancellationToken).ConfigureAwait(false))
        {
            await writer.RemoveIfReleasedAsync(new Store.ObjectKey(resource.StoreName, resource.Namespaced ? obj.Namespace() : string.Empty, obj.Name()), obj, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DeleteAsync(ApiResource resource, JsonObject obj, string? policy, CancellationToken cancellationToken)
    {
        try
        {
            await writer.DeleteAsync(resource, obj, null, policy, cancellationToken).ConfigureAwait(false);
        }
        catch (ApiError)
        {
            // Gone or changed meanwhile: the next pass looks again.
        }
    }

    [LoggerMessage(EventId = 5340, Level = LogLevel.Information, Message = "Deleting {Kind} {Namespace}/{Name}: its owners are gone")]
    private partial void LogCollected(string kind, string @namespace, string name);

    [LoggerMessage(EventId = 5341, Level = LogLevel.Warning, Message = "Garbage collection failed, retrying: {Error}")]
    private partial void LogSyncFailed(string error);
}
