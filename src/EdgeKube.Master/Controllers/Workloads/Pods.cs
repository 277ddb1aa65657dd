using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;

namespace EdgeKube.Master.Controllers.Workloads;

/// <summary>Pod and owner helpers the workload controllers share (k8s.io/kubernetes pkg/controller/controller_utils.go).</summary>
public static class Pods
{
    public static string? Phase(JsonObject pod) => pod["status"]?["phase"]?.GetValue<string>();

    public static bool IsTerminating(JsonObject obj) => obj.Metadata()["deletionTimestamp"] is not null;

    /// <summary>Neither finished nor being deleted: counts toward a controller's replicas.</summary>
    public static bool IsActive(JsonObject pod) => !IsTerminating(pod) && Phase(pod) is not ("Succeeded" or "Failed");

    public static JsonObject? Condition(JsonObject obj, string type) =>
        (obj["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == type);

    public static bool IsReady(JsonObject pod) => Condition(pod, "Ready")?.Str("status") == "True";

    /// <summary>Ready for at least <paramref name="minReadySeconds"/> (podutil.IsPodAvailable).</summary>
    public static bool IsAvailable(JsonObject pod, long minReadySeconds, DateTimeOffset now)
    {
        if (!IsReady(pod))
        {
            return false;
        }

        if (minReadySeconds == 0)
        {
            return true;
        }

        var since = ObjectMeta.ParseTime(Condition(pod, "Ready")?.Str("lastTransitionTime"));
        return since is { } t && t.AddSeconds(minReadySeconds) <= now;
    }

    /// <summary>When a ready pod becomes available, or null when it is not ready or already available.</summary>
    public static DateTimeOffset? AvailableAt(JsonObject pod, long minReadySeconds, DateTimeOffset now)
    {
        if (!IsReady(pod) || minReadySeconds == 0)
        {
            return null;
        }

        var since = ObjectMeta.ParseTime(Condition(pod, "Ready")?.Str("lastTransitionTime"));
        return since is { } t && t.AddSeconds(minReadySeconds) > now ? t.AddSeconds(minReadySeconds) : null;
    }

    /// <summary>The uid of the object's controller (the ownerReference with controller: true), or null.</summary>
    public static string? ControllerUid(JsonObject obj) =>
        (obj.Metadata()["ownerReferences"] as JsonArray)?.OfType<JsonObject>()
            .FirstOrDefault(r => r["controller"] is JsonValue c && c.TryGetValue<bool>(out var b) && b)?.Str("uid");

    /// <summary>An ownerReference naming <paramref name="owner"/> as controller, blocking its foreground deletion.</summary>
    public static JsonObject ControllerRef(JsonObject owner) => new()
    {
        ["apiVersion"] = owner.Str("apiVersion"),
        ["kind"] = owner.Str("kind"),
        ["name"] = owner.Name(),
        ["uid"] = owner.Uid(),
        ["controller"] = true,
        ["blockOwnerDeletion"] = true,
    };

    /// <summary>A new pod of <paramref name="owner"/> from its spec.template.</summary>
    public static JsonObject FromTemplate(JsonObject owner, JsonObject template, string generateName)
    {
        var pod = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject
            {
                ["generateName"] = generateName,
                ["namespace"] = owner.Namespace(),
                ["labels"] = template["metadata"]?["labels"]?.DeepClone() ?? new JsonObject(),
                ["ownerReferences"] = new JsonArray(ControllerRef(owner)),
            },
            ["spec"] = template["spec"]?.DeepClone() ?? new JsonObject(),
        };
        if (template["metadata"]?["annotations"] is JsonObject annotations)
        {
            pod.Metadata()["annotations"] = annotations.DeepClone();
        }

        return pod;
    }

    public static int RestartCount(JsonObject pod) =>
        (pod["status"]?["containerStatuses"] as JsonArray ?? []).OfType<JsonObject>().Sum(c => c["restartCount"]?.GetValue<int>() ?? 0);

    /// <summary>
    /// Deletion order for scaling down (controller.ActivePods' Less): unassigned before assigned, Pending before
    /// Unknown before Running, not ready before ready, ready for less time first, more restarts first, newer first.
    /// </summary>
    public static IEnumerable<JsonObject> InDeletionOrder(IEnumerable<JsonObject> pods) =>
        pods.OrderBy(p => p["spec"]?["nodeName"] is null ? 0 : 1)
            .ThenBy(p => Phase(p) switch { "Pending" => 0, "Running" => 2, _ => 1 })
            .ThenBy(p => IsReady(p) ? 1 : 0)
            .ThenByDescending(p => Condition(p, "Ready")?.Str("lastTransitionTime") ?? string.Empty, StringComparer.Ordinal)
            .ThenByDescending(RestartCount)
            .ThenByDescending(p => p.Metadata().Str("creationTimestamp") ?? string.Empty, StringComparer.Ordinal);

    /// <summary>
    /// The pod template's hash, as the deployment and daemon set controllers label pods with it: FNV-32a over
    /// the template (with nulls and empty values left out, so a client's re-serialisation hashes the same),
    /// and the collision count, its decimal digits mapped to Kubernetes' safe alphabet (rand.SafeEncodeString).
    /// </summary>
    public static string TemplateHash(JsonNode? template, long collisionCount = 0)
    {
        var text = Normalize(template)?.ToJsonString() ?? "null";
        if (collisionCount > 0)
        {
            text += collisionCount.ToString(CultureInfo.InvariantCulture);
        }

        uint hash = 2166136261;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 16777619;
        }

        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        var digits = hash.ToString(CultureInfo.InvariantCulture);
        return string.Create(digits.Length, digits, (span, d) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = alphabet[d[i] % alphabet.Length];
            }
        });
    }

    /// <summary>Two pod templates equal once the given label is left out of both (deploymentutil.EqualIgnoreHash), nulls and empty values ignored.</summary>
    public static bool TemplatesEqual(JsonNode? a, JsonNode? b, string ignoredLabel)
    {
        var x = a?.DeepClone() as JsonObject;
        var y = b?.DeepClone() as JsonObject;
        (x?["metadata"]?["labels"] as JsonObject)?.Remove(ignoredLabel);
        (y?["metadata"]?["labels"] as JsonObject)?.Remove(ignoredLabel);
        return JsonNode.DeepEquals(Normalize(x), Normalize(y));
    }

    /// <summary>A copy with object keys sorted and nulls, empty objects and empty arrays removed.</summary>
    public static JsonNode? Normalize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                var copy = new JsonObject();
                foreach (var (k, v) in o.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    if (Normalize(v) is { } n)
                    {
                        copy[k] = n;
                    }
                }

                return copy.Count == 0 ? null : copy;
            case JsonArray a:
                var list = new JsonArray();
                foreach (var item in a)
                {
                    list.Add(Normalize(item) ?? new JsonObject());
                }

                return list.Count == 0 ? null : list;
            case null:
                return null;
            default:
                return node.DeepClone();
        }
    }
}
