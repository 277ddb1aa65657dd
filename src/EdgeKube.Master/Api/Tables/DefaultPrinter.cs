using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// NAME and AGE for resources without a printer of their own, as the API server shows custom resources
/// that declare no printer columns (Age typed "date", the cell already a HumanDuration).
/// </summary>
internal sealed class DefaultPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.AgeColumn with { Type = "date" },
    ];

    public JsonArray Cells(JsonObject obj, DateTimeOffset now) =>
    [
        JsonRead.String(obj, "metadata", "name"),
        HumanDuration.Since(JsonRead.Time(obj, "metadata", "creationTimestamp"), now),
    ];
}
