using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printReplicaSet: NAME, DESIRED, CURRENT, READY, AGE and, wide, CONTAINERS, IMAGES, SELECTOR.</summary>
internal sealed class ReplicaSetPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Int("Desired", ColumnDocs.ReplicaSetSpecReplicas),
        TableColumn.Int("Current", ColumnDocs.ReplicaSetStatusReplicas),
        TableColumn.Int("Ready", ColumnDocs.ReplicaSetReadyReplicas),
        TableColumn.AgeColumn,
        TableColumn.Str("Containers", ColumnDocs.Containers, priority: 1),
        TableColumn.Str("Images", ColumnDocs.Images, priority: 1),
        TableColumn.Str("Selector", ColumnDocs.ReplicaSetSelector, priority: 1),
    ];

    public JsonArray Cells(JsonObject replicaSet, DateTimeOffset now)
    {
        var (names, images) = Workloads.ContainerCells(replicaSet);
        return
        [
            JsonRead.String(replicaSet, "metadata", "name"),
            Workloads.DesiredReplicas(replicaSet),
            JsonRead.Int(replicaSet, "status", "replicas"),
            JsonRead.Int(replicaSet, "status", "readyReplicas"),
            HumanDuration.Since(JsonRead.Time(replicaSet, "metadata", "creationTimestamp"), now),
            names,
            images,
            Workloads.FormatLabelSelector(JsonRead.Node(replicaSet, "spec", "selector")),
        ];
    }
}
