using System.Globalization;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printService: NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE and, wide, SELECTOR.</summary>
internal sealed class ServicePrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Type", ColumnDocs.ServiceType),
        TableColumn.Str("Cluster-IP", ColumnDocs.ServiceClusterIP),
        TableColumn.Str("External-IP", ColumnDocs.ServiceExternalIPs),
        TableColumn.Str("Port(s)", ColumnDocs.ServicePorts),
        TableColumn.AgeColumn,
        TableColumn.Str("Selector", ColumnDocs.ServiceSelector, priority: 1),
    ];

    public JsonArray Cells(JsonObject service, DateTimeOffset now)
    {
        // The API server defaults type to ClusterIP and fills clusterIPs from clusterIP; stored objects may predate that.
        var type = JsonRead.String(service, "spec", "type") is { Length: > 0 } t ? t : "ClusterIP";
        var clusterIP = JsonRead.Array(service, "spec", "clusterIPs")?.FirstOrDefault() is JsonValue first && first.TryGetValue(out string? ip)
            ? ip
            : JsonRead.String(service, "spec", "clusterIP");

        var ports = string.Join(',', JsonRead.Objects(service, "spec", "ports").Select(Port));
        return
        [
            JsonRead.String(service, "metadata", "name"),
            type,
            clusterIP.Length > 0 ? clusterIP : "<none>",
            ExternalIP(service, type),
            ports.Length > 0 ? ports : "<none>",
            HumanDuration.Since(JsonRead.Time(service, "metadata", "creationTimestamp"), now),
            Workloads.FormatLabels(JsonRead.StringMap(service, "spec", "selector")),
        ];
    }

    private static string ExternalIP(JsonObject service, string type)
    {
        var externalIPs = Strings(JsonRead.Array(service, "spec", "externalIPs"));
        switch (type)
        {
            case "ClusterIP" or "NodePort":
                return externalIPs.Count > 0 ? string.Join(',', externalIPs) : "<none>";
            case "LoadBalancer":
                // Printed wide by the server, so the list is never clipped.
                var ingress = JsonRead.Objects(service, "status", "loadBalancer", "ingress")
                    .Select(i => JsonRead.String(i, "ip") is { Length: > 0 } address ? address : JsonRead.String(i, "hostname"))
                    .Where(a => a.Length > 0)
                    .Distinct(StringComparer.Ordinal)
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (externalIPs.Count > 0)
                {
                    return string.Join(',', ingress.Concat(externalIPs));
                }

                return ingress.Count > 0 ? string.Join(',', ingress) : "<pending>";
            case "ExternalName":
                return JsonRead.String(service, "spec", "externalName");
            default:
                return "<unknown>";
        }
    }

    private static string Port(JsonObject port)
    {
        var protocol = JsonRead.String(port, "protocol") is { Length: > 0 } p ? p : "TCP";
        var number = JsonRead.Int(port, "port");
        var nodePort = JsonRead.Int(port, "nodePort");
        return nodePort > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{number}:{nodePort}/{protocol}")
            : string.Create(CultureInfo.InvariantCulture, $"{number}/{protocol}");
    }

    private static List<string> Strings(JsonArray? array) =>
        array?.OfType<JsonValue>().Select(v => v.TryGetValue(out string? s) ? s : "").ToList() ?? [];
}
