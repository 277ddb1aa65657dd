using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// The table form of one resource, as a print handler in kube-apiserver's pkg/printers/internalversion:
/// its columns, and each object's cells in column order.
/// </summary>
/// <remarks>
/// Rules every printer keeps: cells are always produced for every column, wide ones included (the API
/// server prints with Wide on and kubectl drops priority-1 columns itself); a missing field prints as the
/// zero value would in Go; the object passed in is never mutated.
/// </remarks>
internal interface ITablePrinter
{
    IReadOnlyList<TableColumn> Columns { get; }

    JsonArray Cells(JsonObject obj, DateTimeOffset now);

    /// <summary>The row's conditions (meta.k8s.io TableRowCondition), or null for none.</summary>
    JsonArray? Conditions(JsonObject obj) => null;
}
