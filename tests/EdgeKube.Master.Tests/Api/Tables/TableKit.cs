using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Tables;

namespace EdgeKube.Master.Tests.Api.Tables;

/// <summary>Builds objects and reads cells for the table tests; every age is counted to <see cref="Now"/>.</summary>
internal static class TableKit
{
    public static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-01-01T12:00:00Z", CultureInfo.InvariantCulture);

    public static JsonObject Parse(string json) => JsonNode.Parse(json)!.AsObject();

    /// <summary>RFC 3339 for the moment <paramref name="ago"/> before <see cref="Now"/>.</summary>
    public static string Ago(TimeSpan ago) => (Now - ago).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    public static JsonObject Row(string resource, JsonObject obj) =>
        TableWriter.ToTable(resource, [obj], "1", includeObject: null, Now)["rows"]![0]!.AsObject();

    /// <summary>The row's cells as text: strings as they are, numbers in decimal.</summary>
    public static string[] Cells(string resource, JsonObject obj) =>
        [.. Row(resource, obj)["cells"]!.AsArray().Select(c => c!.GetValueKind() == System.Text.Json.JsonValueKind.String ? c.GetValue<string>() : c.ToJsonString())];

    /// <summary>The cells of the priority-0 columns only: what plain <c>kubectl get</c> shows.</summary>
    public static string[] NarrowCells(string resource, JsonObject obj)
    {
        var columns = TableWriter.ColumnDefinitions(resource);
        var cells = Cells(resource, obj);
        return [.. cells.Where((_, i) => columns[i]!["priority"]!.GetValue<int>() == 0)];
    }
}
