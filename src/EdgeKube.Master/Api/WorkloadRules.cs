using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;

namespace EdgeKube.Master.Api;

/// <summary>
/// What the API server does to apps/v1 Deployments, ReplicaSets, DaemonSets and batch/v1 Jobs on create and
/// update: the defaults of k8s.io/kubernetes pkg/apis/{apps,batch}/v1/defaults.go and the checks of their
/// validation.go, with Kubernetes' messages.
/// </summary>
public static class WorkloadRules
{
    /// <summary>Label the job controller puts on its pods and in the generated selector.</summary>
    public const string JobControllerUid = "batch.kubernetes.io/controller-uid";

    /// <summary>Label naming a job's pods' job.</summary>
    public const string JobName = "batch.kubernetes.io/job-name";

    /// <summary>The most completions (and parallelism) an Indexed job may ask for.</summary>
    public const long MaxIndexedCompletions = 100000;

    public static bool IsWorkload(string kind) => kind is "Deployment" or "ReplicaSet" or "DaemonSet" or "Job";

    public static void ApplyDefaults(JsonObject obj)
    {
        var spec = obj.Obj("spec");
        var template = spec.Obj("template");
        var templateSpec = template.Obj("spec");
        switch (obj.Str("kind"))
        {
            case "Deployment":
                spec["replicas"] ??= 1;
                spec["revisionHistoryLimit"] ??= 10;
                spec["progressDeadlineSeconds"] ??= 600;
                var strategy = spec.Obj("strategy");
                strategy["type"] ??= "RollingUpdate";
                if (strategy.Str("type") == "RollingUpdate")
                {
                    var rolling = strategy.Obj("rollingUpdate");
                    rolling["maxUnavailable"] ??= "25%";
                    rolling["maxSurge"] ??= "25%";
                }

                break;
            case "ReplicaSet":
                spec["replicas"] ??= 1;
                break;
            case "DaemonSet":
                spec["revisionHistoryLimit"] ??= 10;
                var update = spec.Obj("updateStrategy");
                update["type"] ??= "RollingUpdate";
                if (update.Str("type") == "RollingUpdate")
                {
                    var rolling = update.Obj("rollingUpdate");
                    rolling["maxUnavailable"] ??= 1;
                    rolling["maxSurge"] ??= 0;
                }

                break;
            case "Job":
                if (spec["completions"] is null && spec["parallelism"] is null)
                {
                    spec["completions"] = 1;
                }

                spec["parallelism"] ??= 1;
                spec["backoffLimit"] ??= 6;
                spec["completionMode"] ??= "NonIndexed";
                spec["suspend"] ??= false;
                spec["podReplacementPolicy"] ??= "TerminatingOrFailed";
                if (spec["selector"] is null && spec["manualSelector"]?.GetValue<bool>() != true && obj.Uid() is { Length: > 0 } uid)
                {
                    // The job controller's own selector: the job's uid, which no other job's pods carry.
                    spec["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { [JobControllerUid] = uid } };
                    var labels = template.Metadata().Obj("labels");
                    labels[JobControllerUid] = uid;
                    labels[JobName] = obj.Name();
                    labels["controller-uid"] = uid;
                    labels["job-name"] = obj.Name();
                }

                break;
        }

        PodRules.ApplySpecDefaults(templateSpec);
    }

    /// <summary>Field errors in the API server's words.</summary>
    public static List<string> Validate(JsonObject obj)
    {
        var errors = new List<string>();
        var kind = obj.Str("kind");
        var spec = obj["spec"] as JsonObject ?? [];
        foreach (var field in new[] { "replicas", "minReadySeconds", "revisionHistoryLimit", "parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished" })
        {
            if (spec[field] is JsonValue v && v.TryGetValue<long>(out var n) && n < 0)
            {
                errors.Add($"spec.{field}: Invalid value: {n}: must be greater than or equal to 0");
            }
        }

        var selectorNode = spec["selector"];
        var templateLabels = ObjectMeta.StringMap(spec["template"]?["metadata"]?["labels"]);
        if (selectorNode is null)
        {
            errors.Add("spec.selector: Required value");
        }
        else
        {
            try
            {
                var selector = LabelSelector.FromJson(selectorNode);
                if (selector.IsEmpty)
                {
                    errors.Add($"spec.selector: Invalid value: {Compact(selectorNode)}: empty selector is invalid for {kind?.ToLowerInvariant()}");
                }
                else if (!selector.Matches(templateLabels))
                {
                    errors.Add($"spec.template.metadata.labels: Invalid value: {GoMap(templateLabels)}: `selector` does not match template `labels`");
                }
            }
            catch (SelectorException e)
            {
                errors.Add($"spec.selector: Invalid value: {Compact(selectorNode)}: {e.Message}");
            }
        }

        var templateSpec = spec["template"]?["spec"] as JsonObject;
        var pod = new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "template" },
            ["spec"] = templateSpec?.DeepClone(),
        };
        errors.AddRange(PodRules.Validate(pod).Select(e => e.StartsWith("spec", StringComparison.Ordinal) ? "spec.template." + e : e));

        var restart = templateSpec?.Str("restartPolicy") ?? "Always";
        if (kind == "Job")
        {
            if (restart is not ("OnFailure" or "Never"))
            {
                errors.Add($"spec.template.spec.restartPolicy: Unsupported value: \"{restart}\": supported values: \"OnFailure\", \"Never\"");
            }

            var mode = spec.Str("completionMode");
            if (mode is not (null or "NonIndexed" or "Indexed"))
            {
                errors.Add($"spec.completionMode: Unsupported value: \"{mode}\": supported values: \"NonIndexed\", \"Indexed\"");
            }
            else if (mode == "Indexed")
            {
                if (spec["completions"] is not JsonValue completions)
                {
                    errors.Add("spec.completions: Required value: when completion mode is Indexed");
                }
                else if (completions.TryGetValue<long>(out var n) && n > MaxIndexedCompletions)
                {
                    errors.Add($"spec.completions: Invalid value: {n}: must be less than or equal to {MaxIndexedCompletions} when completion mode is Indexed");
                }

                if (spec["parallelism"] is JsonValue p && p.TryGetValue<long>(out var parallel) && parallel > MaxIndexedCompletions)
                {
                    errors.Add($"spec.parallelism: Invalid value: {parallel}: must be less than or equal to {MaxIndexedCompletions} when completion mode is Indexed");
                }
            }
        }
        else if (restart != "Always")
        {
            errors.Add($"spec.template.spec.restartPolicy: Unsupported value: \"{restart}\": supported values: \"Always\"");
        }

        if (kind == "Deployment")
        {
            var type = spec["strategy"]?["type"]?.GetValue<string>();
            if (type is not ("RollingUpdate" or "Recreate"))
            {
                errors.Add($"spec.strategy.type: Unsupported value: \"{type}\": supported values: \"Recreate\", \"RollingUpdate\"");
            }
            else if (type == "RollingUpdate")
            {
                var rolling = spec["strategy"]?["rollingUpdate"];
                var surge = ValidIntOrPercent(rolling?["maxSurge"], "spec.strategy.rollingUpdate.maxSurge", errors);
                var unavailable = ValidIntOrPercent(rolling?["maxUnavailable"], "spec.strategy.rollingUpdate.maxUnavailable", errors);
                if (surge == 0 && unavailable == 0)
                {
                    errors.Add($"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: {Compact(rolling?["maxUnavailable"])}: may not be 0 when `maxSurge` is 0");
                }
            }
        }

        return errors;
    }

    /// <summary>The fields that may not change after creation.</summary>
    public static List<string> ValidateUpdate(JsonObject old, JsonObject updated)
    {
        var errors = new List<string>();
        if (!JsonNode.DeepEquals(old["spec"]?["selector"], updated["spec"]?["selector"]))
        {
            errors.Add($"spec.selector: Invalid value: {Compact(updated["spec"]?["selector"])}: field is immutable");
        }

        if (updated.Str("kind") == "Job")
        {
            if (!JsonNode.DeepEquals(old["spec"]?["template"], updated["spec"]?["template"]))
            {
                errors.Add("spec.template: Invalid value: the pod template: field is immutable");
            }

            if (!JsonNode.DeepEquals(old["spec"]?["completions"], updated["spec"]?["completions"]))
            {
                errors.Add($"spec.completions: Invalid value: {Compact(updated["spec"]?["completions"])}: field is immutable");
            }

            if (!JsonNode.DeepEquals(old["spec"]?["completionMode"], updated["spec"]?["completionMode"]))
            {
                errors.Add($"spec.completionMode: Invalid value: {Compact(updated["spec"]?["completionMode"])}: field is immutable");
            }
        }

        return errors;
    }

    /// <summary>An int-or-percent value scaled to <paramref name="total"/> (intstr.GetScaledValueFromIntOrPercent).</summary>
    public static long Scaled(JsonNode? value, long total, bool roundUp)
    {
        if (value is JsonValue v && v.TryGetValue<long>(out var n))
        {
            return n;
        }

        if (value is JsonValue s && s.TryGetValue<string>(out var text) && text.EndsWith('%')
            && long.TryParse(text[..^1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var percent))
        {
            var exact = total * percent / 100.0;
            return (long)(roundUp ? Math.Ceiling(exact) : Math.Floor(exact));
        }

        return 0;
    }

    private static long? ValidIntOrPercent(JsonNode? value, string path, List<string> errors)
    {
        switch (value)
        {
            case null:
                return null;
            case JsonValue v when v.TryGetValue<long>(out var n):
                if (n < 0)
                {
                    errors.Add($"{path}: Invalid value: {n}: must be greater than or equal to 0");
                }

                return n;
            case JsonValue s when s.TryGetValue<string>(out var text) && text.EndsWith('%')
                && long.TryParse(text[..^1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var percent):
                if (percent is < 0 or > 100)
                {
                    errors.Add($"{path}: Invalid value: \"{text}\": must not be greater than 100%");
                }

                return percent;
            default:
                errors.Add($"{path}: Invalid value: {Compact(value)}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
                return null;
        }
    }

    private static string Compact(JsonNode? node) => node?.ToJsonString() ?? "null";

    /// <summary>A label map as Go's %#v prints it (map[string]string{"app":"web"}), keys sorted.</summary>
    private static string GoMap(Dictionary<string, string> labels) =>
        labels.Count == 0
            ? "map[string]string(nil)"
            : "map[string]string{" + string.Join(", ", labels.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"\"{p.Key}\":\"{p.Value}\"")) + "}";
}
