using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printDaemonSet: NAME, DESIRED, CURRENT, READY, UP-TO-DATE, AVAILABLE, NODE SELECTOR, AGE and, wide, CONTAINERS, IMAGES, SELECTOR.</summary>
internal sealed class DaemonSetPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Int("Desired", ColumnDocs.DaemonSetDesired),
        TableColumn.Int("Current", ColumnDocs.DaemonSetCurrent),
        TableColumn.Int("Ready", ColumnDocs.DaemonSetReady),
        TableColumn.Int("Up-to-date", ColumnDocs.DaemonSetUpdated),
        TableColumn.Int("Available", ColumnDocs.DaemonSetAvailable),
        TableColumn.Str("Node Selector", ColumnDocs.PodNodeSelector),
        TableColumn.AgeColumn,
        TableColumn.Str("Containers", ColumnDocs.Containers, priority: 1),
        TableColumn.Str("Images", ColumnDocs.Images, priority: 1),
        TableColumn.Str("Selector", ColumnDocs.DaemonSetSelector, priority: 1),
    ];

    public JsonArray Cells(JsonObject daemonSet, DateTimeOffset now)
    {
        var (names, images) = Workloads.ContainerCells(daemonSet);
        return
        [
            JsonRead.String(daemonSet, "metadata", "name"),
            JsonRead.Int(daemonSet, "status", "desiredNumberScheduled"),
            JsonRead.Int(daemonSet, "status", "currentNumberScheduled"),
            JsonRead.Int(daemonSet, "status", "numberReady"),
            JsonRead.Int(daemonSet, "status", "updatedNumberScheduled"),
            JsonRead.Int(daemonSet, "status", "numberAvailable"),
            Workloads.FormatLabels(JsonRead.StringMap(daemonSet, "spec", "template", "spec", "nodeSelector")),
            HumanDuration.Since(JsonRead.Time(daemonSet, "metadata", "creationTimestamp"), now),
            names,
            images,
            Workloads.FormatLabelSelector(JsonRead.Node(daemonSet, "spec", "selector")),
        ];
    }
}
