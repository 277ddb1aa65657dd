using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;

namespace EdgeKube.Master.Api.Tables;

/// <summary>Cells the workload printers share.</summary>
internal static class Workloads
{
    /// <summary>spec.replicas, which the API server defaults to 1 when a client leaves it out.</summary>
    public static long DesiredReplicas(JsonObject obj) => JsonRead.IntOrNull(obj, "spec", "replicas") ?? 1;

    /// <summary>layoutContainerCells: the pod template's container names and images, each comma-joined.</summary>
    public static (string Names, string Images) ContainerCells(JsonObject obj)
    {
        var containers = JsonRead.Objects(obj, "spec", "template", "spec", "containers").ToList();
        return (
            string.Join(',', containers.Select(c => JsonRead.String(c, "name"))),
            string.Join(',', containers.Select(c => JsonRead.String(c, "image"))));
    }

    /// <summary>metav1.FormatLabelSelector: the selector's canonical string, "&lt;none&gt;" when empty, "&lt;error&gt;" when invalid.</summary>
    public static string FormatLabelSelector(JsonNode? selector)
    {
        try
        {
            var text = LabelSelector.FromJson(selector).ToString();
            return text.Length > 0 ? text : "<none>";
        }
        catch (SelectorException)
        {
            return "<error>";
        }
    }

    /// <summary>labels.FormatLabels: "k=v" pairs sorted and comma-joined, "&lt;none&gt;" when empty.</summary>
    public static string FormatLabels(IEnumerable<KeyValuePair<string, string>> labels)
    {
        var text = string.Join(',', labels.Select(p => p.Key + "=" + p.Value).Order(StringComparer.Ordinal));
        return text.Length > 0 ? text : "<none>";
    }
}
