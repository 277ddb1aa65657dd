using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Api;

/// <summary>
/// The API server's write rules, shared by the HTTP handlers and the in-process controllers so that a pod a
/// ReplicaSet creates is defaulted and validated exactly as one kubectl creates: create (namespace checks,
/// generateName, defaults, validation, generation) and delete (graceful pods, terminating namespaces,
/// finalizers and the propagation policies the garbage collector finishes).
/// </summary>
public sealed class ObjectWriter(IObjectStore store, TimeProvider time)
{
    /// <summary>metadata.finalizers entry the garbage collector honours for propagationPolicy=Foreground.</summary>
    public const string ForegroundFinalizer = "foregroundDeletion";

    /// <summary>metadata.finalizers entry the garbage collector honours for propagationPolicy=Orphan.</summary>
    public const string OrphanFinalizer = "orphan";

    public IObjectStore Store => store;

    public TimeProvider Time => time;

    /// <summary>Creates an object in a namespace (or cluster-wide): the namespace must exist and not be terminating.</summary>
    public async Task<JsonObject> CreateAsync(ApiResource resource, string? ns, JsonObject obj, CancellationToken cancellationToken)
    {
        var meta = obj.Metadata();
        if (resource.Namespaced)
        {
            var bodyNs = meta.Str("namespace");
            if (bodyNs is { Length: > 0 } && bodyNs != ns)
            {
                throw ApiError.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
            }

            meta["namespace"] = ns;
            if (await store.GetAsync(new ObjectKey("namespaces", string.Empty, ns!), cancellationToken).ConfigureAwait(false) is not { } nsObj)
            {
                throw new ApiError(404, "NotFound", $"namespaces \"{ns}\" not found", ns, "namespaces");
            }

            if (nsObj["status"]?["phase"]?.GetValue<string>() == "Terminating")
            {
                throw new ApiError(403, "Forbidden", $"{resource.Plural} \"{obj.Name()}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated");
            }
        }
        else
        {
            meta.Remove("namespace");
        }

        if (string.IsNullOrEmpty(meta.Str("name")) && meta.Str("generateName") is { Length: > 0 } prefix)
        {
            meta["name"] = prefix + RandomSuffix();
        }

        return await CreateObjectAsync(resource, obj, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Defaults, validates and stores a new object whose metadata.namespace is already checked.</summary>
    public async Task<JsonObject> CreateObjectAsync(ApiResource resource, JsonObject obj, CancellationToken cancellationToken)
    {
        var meta = obj.Metadata();
        var name = meta.Str("name") ?? string.Empty;
        obj["apiVersion"] = resource.ApiVersion;
        obj["kind"] = resource.Kind;
        meta["uid"] = Guid.NewGuid().ToString();
        meta["creationTimestamp"] = ObjectMeta.Time(time.GetUtcNow());
        meta.Remove("resourceVersion");
        meta.Remove("deletionTimestamp");
        meta.Remove("deletionGracePeriodSeconds");

        var errors = new List<string>();
        PodRules.ValidateName(name, "metadata.name", errors);
        switch (resource.Kind)
        {
            case "Pod":
                obj.Remove("status");
                PodRules.ApplyDefaults(obj);
                errors = PodRules.Validate(obj);
                if (obj["spec"]?["nodeName"] is JsonValue)
                {
                    // Bound at creation (kubectl run --overrides, static assignment, DaemonSet pods): scheduled already.
                    obj.Obj("status")["conditions"] = new JsonArray(new JsonObject { ["type"] = "PodScheduled", ["status"] = "True", ["lastProbeTime"] = null, ["lastTransitionTime"] = ObjectMeta.Time(time.GetUtcNow()) });
                }

                break;
            case "Namespace":
                obj.Obj("spec")["finalizers"] = new JsonArray("kubernetes");
                obj.Obj("status")["phase"] = "Active";
                obj.Metadata().Obj("labels")["kubernetes.io/metadata.name"] = name;
                break;
            case "Event":
                if (obj.Str("type") is null)
                {
                    obj["type"] = "Normal";
                }

                break;
            case "Deployment" or "ReplicaSet" or "DaemonSet" or "Job":
                obj.Remove("status");
                meta["generation"] = 1;
                WorkloadRules.ApplyDefaults(obj);
                errors.AddRange(WorkloadRules.Validate(obj));
                break;
        }

        if (errors.Count > 0)
        {
            throw ApiError.Invalid(resource, name, errors);
        }

        var key = new ObjectKey(resource.StoreName, resource.Namespaced ? obj.Namespace() : string.Empty, name);
        try
        {
            return await store.CreateAsync(key, obj, cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException e)
        {
            throw ApiError.From(e, resource, name);
        }
    }

    /// <summary>
    /// Deletes an object as the API server does: a pod bound to a node is only marked (deletionTimestamp,
    /// grace period) and goes once its node has stopped it; a namespace becomes Terminating and goes once
    /// empty; Orphan and Foreground propagation put their finalizer on the object for the garbage collector,
    /// and any object with finalizers is only marked; anything else goes at once (its dependents then go
    /// in the background, by the garbage collector).
    /// </summary>
    public async Task<JsonObject> DeleteAsync(ApiResource resource, JsonObject current, long? grace, string? propagationPolicy, CancellationToken cancellationToken)
    {
        var key = new ObjectKey(resource.StoreName, resource.Namespaced ? current.Namespace() : string.Empty, current.Name());
        if (propagationPolicy is not (null or "Orphan" or "Background" or "Foreground"))
        {
            throw ApiError.BadRequest($"propagationPolicy: Unsupported value: \"{propagationPolicy}\": supported values: \"Foreground\", \"Background\", \"Orphan\"");
        }

        try
        {
            if (resource.Kind == "Pod" && current["spec"]?["nodeName"] is JsonValue && grace is not 0)
            {
                var meta = current.Metadata();
                if (meta["deletionTimestamp"] is not null)
                {
                    return current;
                }

                // A number parsed from JSON is a long, one defaulted in this process an int.
                var seconds = grace ?? (current["spec"]?["terminationGracePeriodSeconds"] is JsonValue g
                    ? (g.TryGetValue<long>(out var l) ? l : g.TryGetValue<int>(out var i) ? i : 30) : 30);
                meta["deletionTimestamp"] = ObjectMeta.Time(time.GetUtcNow().AddSeconds(seconds));
                meta["deletionGracePeriodSeconds"] = seconds;
                return await store.UpdateAsync(key, current, current.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            }

            if (resource.Kind == "Namespace")
            {
                if (current.Name() is "default" or "kube-system" or "kube-public" or "kube-node-lease")
                {
                    throw new ApiError(403, "Forbidden", $"namespaces \"{current.Name()}\" is forbidden: this namespace may not be deleted");
                }

                if (current["status"]?["phase"]?.GetValue<string>() != "Terminating")
                {
                    current.Metadata()["deletionTimestamp"] = ObjectMeta.Time(time.GetUtcNow());
                    current.Obj("status")["phase"] = "Terminating";
                    return await store.UpdateAsync(key, current, current.ResourceVersion(), cancellationToken).ConfigureAwait(false);
                }

                return current;
            }

            var finalizers = Finalizers(current);
            var added = propagationPolicy switch
            {
                "Orphan" => OrphanFinalizer,
                "Foreground" => ForegroundFinalizer,
                _ => null,
            };
            if (added is not null && !finalizers.Contains(added))
            {
                finalizers.Add(added);
            }

            if (finalizers.Count > 0)
            {
                var meta = current.Metadata();
                meta["finalizers"] = new JsonArray([.. finalizers.Select(f => (JsonNode)f)]);
                if (resource.Kind == "Pod")
                {
                    // Unbound, or deleted with grace 0: nothing is left to stop, so the pod only waits for its finalizers.
                    return await FinishPodAsync(store, time, key, current, cancellationToken).ConfigureAwait(false);
                }

                meta["deletionTimestamp"] ??= ObjectMeta.Time(time.GetUtcNow());
                meta["deletionGracePeriodSeconds"] ??= 0;
                return await store.UpdateAsync(key, current, current.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            }

            return await store.DeleteAsync(key, null, cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException e)
        {
            throw ApiError.From(e, resource, current.Name());
        }
    }

    /// <summary>
    /// After an update: an object marked for deletion whose last finalizer is gone is removed, as the API server
    /// does; a pod only once nothing runs it any more (its node finished with it, or it was never bound).
    /// </summary>
    public async Task<JsonObject> RemoveIfReleasedAsync(ObjectKey key, JsonObject updated, CancellationToken cancellationToken)
    {
        if (updated.Metadata()["deletionTimestamp"] is null || Finalizers(updated).Count > 0 || updated.Str("kind") == "Namespace"
            || (updated.Str("kind") == "Pod" && !IsStopped(updated)))
        {
            return updated;
        }

        try
        {
            return await store.DeleteAsync(key, updated.ResourceVersion(), cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException)
        {
            // Changed meanwhile: whoever changed it decides.
            return updated;
        }
    }

    /// <summary>
    /// A pod's node has stopped it for good (kubelet's final delete with grace period 0), or nothing will ever run
    /// it (never bound, its node gone, a forced delete): the pod is removed, unless finalizers hold it. Then it stays,
    /// marked with deletionGracePeriodSeconds 0 and, if it never reached one, the terminal phase Failed (as kubelet
    /// reports a pod it killed), until an update removes the last finalizer (see <see cref="RemoveIfReleasedAsync"/>).
    /// Throws <see cref="StoreException"/> when the pod changed meanwhile.
    /// </summary>
    public static async Task<JsonObject> FinishPodAsync(IObjectStore store, TimeProvider time, ObjectKey key, JsonObject pod, CancellationToken cancellationToken)
    {
        if (Finalizers(pod).Count == 0)
        {
            return await store.DeleteAsync(key, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false);
        }

        var meta = pod.Metadata();
        var terminal = pod["status"]?["phase"]?.GetValue<string>() is "Succeeded" or "Failed";
        if (meta["deletionTimestamp"] is not null && GraceZero(pod) && terminal)
        {
            // Already marked so: held by its finalizers.
            return pod;
        }

        var now = time.GetUtcNow();
        if (meta["deletionTimestamp"] is null || ObjectMeta.ParseTime(meta.Str("deletionTimestamp")) > now)
        {
            meta["deletionTimestamp"] = ObjectMeta.Time(now);
        }

        meta["deletionGracePeriodSeconds"] = 0L;
        if (!terminal)
        {
            MarkStopped(pod.Obj("status"), ObjectMeta.Time(now));
        }

        return await store.UpdateAsync(key, pod, pod.ResourceVersion(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The status of a pod that ended without a last word from its node: Failed, not ready, and every container
    /// that had not ended terminated as kubelet reports a container it cannot find any more.
    /// </summary>
    private static void MarkStopped(JsonObject status, string now)
    {
        status["phase"] = "Failed";
        foreach (var list in new[] { "initContainerStatuses", "containerStatuses" })
        {
            foreach (var container in (status[list] as JsonArray ?? []).OfType<JsonObject>())
            {
                container["ready"] = false;
                container["started"] = false;
                if (container["state"]?["terminated"] is null)
                {
                    container["state"] = new JsonObject
                    {
                        ["terminated"] = new JsonObject
                        {
                            ["exitCode"] = 137,
                            ["reason"] = "ContainerStatusUnknown",
                            ["message"] = "The container could not be located when the pod was terminated",
                        },
                    };
                }
            }
        }

        foreach (var condition in (status["conditions"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (condition.Str("type") is "Ready" or "ContainersReady" && condition.Str("status") != "False")
            {
                condition["status"] = "False";
                condition["lastTransitionTime"] = now;
                condition["reason"] = "PodCompleted";
            }
        }
    }

    /// <summary>A pod marked for deletion that nothing runs any more: never bound to a node, or finished with (grace period 0).</summary>
    public static bool IsStopped(JsonObject pod) => pod["spec"]?["nodeName"] is not JsonValue || GraceZero(pod);

    private static bool GraceZero(JsonObject obj) =>
        obj.Metadata()["deletionGracePeriodSeconds"] is JsonValue g && (g.TryGetValue<long>(out var seconds) ? seconds == 0 : g.TryGetValue<int>(out var small) && small == 0);

    /// <summary>metadata.finalizers as a list.</summary>
    public static List<string> Finalizers(JsonObject obj) =>
        (obj.Metadata()["finalizers"] as JsonArray ?? []).OfType<JsonValue>().Select(v => v.TryGetValue<string>(out var s) ? s : null).OfType<string>().ToList();

    /// <summary>Five characters from the alphabet Kubernetes uses for generated names (no vowels, no look-alikes).</summary>
    public static string RandomSuffix()
    {
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        return string.Create(5, 0, (span, _) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
            }
        });
    }
}
