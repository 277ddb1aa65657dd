using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printNamespace: NAME, STATUS (the phase), AGE.</summary>
internal sealed class NamespacePrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Status", ColumnDocs.NamespaceStatus),
        TableColumn.AgeColumn,
    ];

    public JsonArray Cells(JsonObject ns, DateTimeOffset now) =>
    [
        JsonRead.String(ns, "metadata", "name"),
        JsonRead.String(ns, "status", "phase"),
        HumanDuration.Since(JsonRead.Time(ns, "metadata", "creationTimestamp"), now),
    ];
}
