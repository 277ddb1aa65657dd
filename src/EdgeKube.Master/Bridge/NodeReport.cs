using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Protocol;

namespace EdgeKube.Master.Bridge;

/// <summary>
/// How a node's report meets the stored Node: the node owns its status and the labels and annotations it
/// reports; those set through the API (<c>kubectl label</c>, <c>annotate</c>) stay. The node's sensors are
/// its own too, and a sensor it stopped reporting (taken out of its config, or failed for longer than its
/// <c>absentAfter</c>) must not linger in nodeSelectors and dashboards: the sensors listed in the stored
/// <c>edgekube.io/sensors</c> (the node's previous report) are the record of what the node owns, so their
/// label <c>sensors.edgekube.io/{sensor}</c> and annotations <c>edgekube.io/{sensor}.*</c> go when the new
/// report does not carry them. A record in the store, not in memory, so a restarted master cleans up too.
/// </summary>
public static class NodeReport
{
    /// <summary>Merges the reported labels and annotations into <paramref name="current"/> and drops the stale sensor keys.</summary>
    public static void Merge(JsonObject current, JsonObject reported)
    {
        var labels = current.Metadata().Obj("labels");
        var annotations = current.Metadata().Obj("annotations");
        var reportedLabels = reported["metadata"]?["labels"] as JsonObject ?? [];
        var reportedAnnotations = reported["metadata"]?["annotations"] as JsonObject ?? [];
        var owned = SensorNames(annotations.Str(NodeKeys.Sensors));

        foreach (var sensor in owned)
        {
            var label = NodeKeys.SensorLabelPrefix + sensor;
            if (!reportedLabels.ContainsKey(label))
            {
                labels.Remove(label);
            }

            var prefix = NodeKeys.SensorAnnotationPrefix(sensor);
            foreach (var key in annotations.Select(a => a.Key).Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !reportedAnnotations.ContainsKey(k)).ToList())
            {
                annotations.Remove(key);
            }
        }

        if (!reportedAnnotations.ContainsKey(NodeKeys.Sensors))
        {
            annotations.Remove(NodeKeys.Sensors);
        }

        foreach (var (k, v) in reportedLabels)
        {
            labels[k] = v?.DeepClone();
        }

        foreach (var (k, v) in reportedAnnotations)
        {
            annotations[k] = v?.DeepClone();
        }
    }

    /// <summary>The sensor names in a structured sensor annotation; none when it is absent or not what a node writes.</summary>
    public static IReadOnlyList<string> SensorNames(string? structured)
    {
        if (string.IsNullOrEmpty(structured))
        {
            return [];
        }

        try
        {
            return JsonNode.Parse(structured) is JsonArray sensors
                ? [.. sensors.OfType<JsonObject>().Select(s => s.Str("name")).OfType<string>().Where(n => n.Length > 0 && !n.Contains('/', StringComparison.Ordinal))]
                : [];
        }
        catch (JsonException)
        {
            return [];
        }
    }
}
