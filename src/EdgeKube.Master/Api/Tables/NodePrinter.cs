using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// kube-apiserver's printNode: NAME, STATUS, ROLES, AGE, VERSION and, wide, INTERNAL-IP, EXTERNAL-IP,
/// OS-IMAGE, KERNEL-VERSION, CONTAINER-RUNTIME.
/// </summary>
internal sealed class NodePrinter : ITablePrinter
{
    private const string RoleLabelPrefix = "node-role.kubernetes.io/";
    private const string RoleLabel = "kubernetes.io/role";

    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Status", ColumnDocs.NodeStatus),
        TableColumn.Str("Roles", ColumnDocs.NodeRoles),
        TableColumn.AgeColumn,
        TableColumn.Str("Version", ColumnDocs.NodeKubeletVersion),
        TableColumn.Str("Internal-IP", ColumnDocs.NodeAddresses, priority: 1),
        TableColumn.Str("External-IP", ColumnDocs.NodeAddresses, priority: 1),
        TableColumn.Str("OS-Image", ColumnDocs.NodeOSImage, priority: 1),
        TableColumn.Str("Kernel-Version", ColumnDocs.NodeKernelVersion, priority: 1),
        TableColumn.Str("Container-Runtime", ColumnDocs.NodeContainerRuntimeVersion, priority: 1),
    ];

    public JsonArray Cells(JsonObject node, DateTimeOffset now)
    {
        var roles = Roles(node);
        return
        [
            JsonRead.String(node, "metadata", "name"),
            Status(node),
            roles.Count > 0 ? string.Join(',', roles) : "<none>",
            HumanDuration.Since(JsonRead.Time(node, "metadata", "creationTimestamp"), now),
            JsonRead.String(node, "status", "nodeInfo", "kubeletVersion"),
            Address(node, "InternalIP"),
            Address(node, "ExternalIP"),
            OrUnknown(JsonRead.String(node, "status", "nodeInfo", "osImage")),
            OrUnknown(JsonRead.String(node, "status", "nodeInfo", "kernelVersion")),
            OrUnknown(JsonRead.String(node, "status", "nodeInfo", "containerRuntimeVersion")),
        ];
    }

    /// <summary>"Ready", "NotReady" (any status but True) or "Unknown" (no Ready condition), then ",SchedulingDisabled" when cordoned.</summary>
    internal static string Status(JsonObject node)
    {
        // Upstream keys the conditions by type, so the last Ready condition wins.
        string? ready = null;
        foreach (var condition in JsonRead.Objects(node, "status", "conditions"))
        {
            if (JsonRead.String(condition, "type") == "Ready")
            {
                ready = JsonRead.String(condition, "status") == "True" ? "Ready" : "NotReady";
            }
        }

        var status = ready ?? "Unknown";
        return JsonRead.Bool(node, "spec", "unschedulable") ? status + ",SchedulingDisabled" : status;
    }

    /// <summary>Roles from node-role.kubernetes.io/&lt;role&gt; label keys and the kubernetes.io/role value, sorted and de-duplicated.</summary>
    internal static SortedSet<string> Roles(JsonObject node)
    {
        var roles = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in JsonRead.StringMap(node, "metadata", "labels"))
        {
            if (key.StartsWith(RoleLabelPrefix, StringComparison.Ordinal))
            {
                if (key.Length > RoleLabelPrefix.Length)
                {
                    roles.Add(key[RoleLabelPrefix.Length..]);
                }
            }
            else if (key == RoleLabel && value.Length > 0)
            {
                roles.Add(value);
            }
        }

        return roles;
    }

    private static string Address(JsonObject node, string type) =>
        JsonRead.Objects(node, "status", "addresses")
            .Where(a => JsonRead.String(a, "type") == type)
            .Select(a => JsonRead.String(a, "address"))
            .FirstOrDefault() ?? "<none>";

    private static string OrUnknown(string value) => value.Length > 0 ? value : "<unknown>";
}
