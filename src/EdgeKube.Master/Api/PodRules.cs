using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace EdgeKube.Master.Api;

/// <summary>What the API server does to a Pod on create and update: kube-apiserver's defaulting, the DefaultTolerationSeconds admission, validation and the pod update rules.</summary>
public static partial class PodRules
{
    public const long DefaultTolerationSeconds = 300;

    public static void ApplyDefaults(JsonObject pod)
    {
        var spec = pod.Obj("spec");
        ApplySpecDefaults(spec);
        ApplyAdmission(pod, spec);
    }

    /// <summary>The PodSpec defaults, which pod templates (in Deployments, Jobs, ...) get too.</summary>
    public static void ApplySpecDefaults(JsonObject spec)
    {
        spec["restartPolicy"] ??= "Always";
        spec["dnsPolicy"] ??= "ClusterFirst";
        spec["terminationGracePeriodSeconds"] ??= 30;
        spec["schedulerName"] ??= "default-scheduler";
        spec["securityContext"] ??= new JsonObject();
        spec["enableServiceLinks"] ??= true;
        spec["priority"] ??= 0;
        spec["preemptionPolicy"] ??= "PreemptLowerPriority";
        foreach (var list in new[] { "initContainers", "containers" })
        {
            if (spec[list] is not JsonArray containers)
            {
                continue;
            }

            foreach (var c in containers.OfType<JsonObject>())
            {
                c["imagePullPolicy"] ??= DefaultPullPolicy(c.Str("image") ?? string.Empty);
                c["terminationMessagePath"] ??= "/dev/termination-log";
                c["terminationMessagePolicy"] ??= "File";
                var resources = c.Obj("resources");
                // Limits without requests: the requests default to the limits.
                if (resources["limits"] is JsonObject limits)
                {
                    var requests = resources.Obj("requests");
                    foreach (var (k, v) in limits)
                    {
                        requests[k] ??= v?.DeepClone();
                    }
                }
            }
        }
    }

    private static void ApplyAdmission(JsonObject pod, JsonObject spec)
    {
        var tolerations = spec["tolerations"] as JsonArray ?? [];
        foreach (var key in new[] { "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable" })
        {
            // As the DefaultTolerationSeconds admission plugin: a toleration of that key (or of every key) for NoExecute (or every effect) is kept as the pod has it.
            if (!tolerations.OfType<JsonObject>().Any(t => (t.Str("key") ?? string.Empty) is var k && (k == key || k.Length == 0) && (t.Str("effect") ?? string.Empty) is "NoExecute" or ""))
            {
                tolerations.Add(new JsonObject
                {
                    ["key"] = key,
                    ["operator"] = "Exists",
                    ["effect"] = "NoExecute",
                    ["tolerationSeconds"] = DefaultTolerationSeconds,
                });
            }
        }

        spec["tolerations"] = tolerations;
        var status = pod.Obj("status");
        status["phase"] ??= "Pending";
        status["qosClass"] = QosClass(spec);
    }

    /// <summary>kubelet's default: Always for :latest or no tag, else IfNotPresent.</summary>
    public static string DefaultPullPolicy(string image)
    {
        if (image.Contains('@', StringComparison.Ordinal))
        {
            return "IfNotPresent";
        }

        var lastSlash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        var tag = colon > lastSlash ? image[(colon + 1)..] : string.Empty;
        return tag.Length == 0 || tag == "latest" ? "Always" : "IfNotPresent";
    }

    public static string QosClass(JsonObject spec)
    {
        var containers = (spec["containers"] as JsonArray ?? []).Concat(spec["initContainers"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        var any = false;
        var guaranteed = containers.Count > 0;
        foreach (var c in containers)
        {
            var requests = ObjectMeta.StringMap(c["resources"]?["requests"]);
            var limits = ObjectMeta.StringMap(c["resources"]?["limits"]);
            any |= requests.Count > 0 || limits.Count > 0;
            foreach (var r in new[] { "cpu", "memory" })
            {
                if (!limits.TryGetValue(r, out var limit) || !requests.TryGetValue(r, out var request) || limit != request)
                {
                    guaranteed = false;
                }
            }
        }

        return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
    }

    /// <summary>Field errors in the API server's words ("spec.containers[0].image: Required value").</summary>
    public static List<string> Validate(JsonObject pod)
    {
        var errors = new List<string>();
        ValidateName(pod.Name(), "metadata.name", errors);
        var spec = pod["spec"] as JsonObject;
        if (spec?["containers"] is not JsonArray { Count: > 0 } containers)
        {
            errors.Add("spec.containers: Required value");
            return errors;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (list, items) in new[] { ("initContainers", spec["initContainers"] as JsonArray ?? []), ("containers", containers) })
        {
            for (var i = 0; i < items.Count; i++)
            {
                var path = $"spec.{list}[{i}]";
                if (items[i] is not JsonObject c)
                {
                    errors.Add($"{path}: Invalid value: must be an object");
                    continue;
                }

                var name = c.Str("name");
                if (string.IsNullOrEmpty(name))
                {
                    errors.Add($"{path}.name: Required value");
                }
                else if (!Dns1123Label().IsMatch(name) || name.Length > 63)
                {
                    errors.Add($"{path}.name: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character");
                }
                else if (!names.Add(name))
                {
                    errors.Add($"{path}.name: Duplicate value: \"{name}\"");
                }

                if (string.IsNullOrWhiteSpace(c.Str("image")))
                {
                    errors.Add($"{path}.image: Required value");
                }

                var policy = c.Str("imagePullPolicy");
                if (policy is not (null or "Always" or "IfNotPresent" or "Never"))
                {
                    errors.Add($"{path}.imagePullPolicy: Unsupported value: \"{policy}\": supported values: \"Always\", \"IfNotPresent\", \"Never\"");
                }
            }
        }

        var restart = spec.Str("restartPolicy");
        if (restart is not (null or "Always" or "OnFailure" or "Never"))
        {
            errors.Add($"spec.restartPolicy: Unsupported value: \"{restart}\": supported values: \"Always\", \"OnFailure\", \"Never\"");
        }

        return errors;
    }

    public static void ValidateName(string name, string path, List<string> errors)
    {
        if (string.IsNullOrEmpty(name))
        {
            errors.Add($"{path}: Required value: name or generateName is required");
        }
        else if (name.Length > 253 || !Dns1123Subdomain().IsMatch(name))
        {
            errors.Add($"{path}: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        }
    }

    /// <summary>
    /// kube-apiserver's pod update rule: besides metadata, only container images, activeDeadlineSeconds
    /// and added tolerations may change. Returns the error, or null when the update is allowed.
    /// </summary>
    public static string? ValidateUpdate(JsonObject old, JsonObject updated)
    {
        var a = (old["spec"] as JsonObject ?? []).DeepClone().AsObject();
        var b = (updated["spec"] as JsonObject ?? []).DeepClone().AsObject();
        foreach (var spec in new[] { a, b })
        {
            foreach (var list in new[] { "containers", "initContainers" })
            {
                foreach (var c in (spec[list] as JsonArray ?? []).OfType<JsonObject>())
                {
                    c.Remove("image");
                }
            }

            spec.Remove("activeDeadlineSeconds");
            spec.Remove("tolerations");
        }

        // The binding sets nodeName once; an update that leaves it out keeps it.
        if (b["nodeName"] is null && a["nodeName"] is not null)
        {
            b["nodeName"] = a["nodeName"]!.DeepClone();
        }

        if (!JsonNode.DeepEquals(a, b))
        {
            return "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
        }

        var oldTolerations = (old["spec"]?["tolerations"] as JsonArray ?? []).ToList();
        var newTolerations = (updated["spec"]?["tolerations"] as JsonArray ?? []).ToList();
        if (oldTolerations.Any(t => !newTolerations.Any(n => JsonNode.DeepEquals(t, n))))
        {
            return "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds";
        }

        return null;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Dns1123Label();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Dns1123Subdomain();
}
