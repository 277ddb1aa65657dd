using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// kube-apiserver's printEvent for core/v1 Events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE and, wide,
/// SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME (in that column order, wide ones interleaved as upstream).
/// </summary>
internal sealed class EventPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.Str("Last Seen", ColumnDocs.EventLastTimestamp),
        TableColumn.Str("Type", ColumnDocs.EventType),
        TableColumn.Str("Reason", ColumnDocs.EventReason),
        TableColumn.Str("Object", ColumnDocs.EventInvolvedObject),
        TableColumn.Str("Subobject", ColumnDocs.EventFieldPath, priority: 1),
        TableColumn.Str("Source", ColumnDocs.EventSource, priority: 1),
        TableColumn.Str("Message", ColumnDocs.EventMessage),
        TableColumn.Str("First Seen", ColumnDocs.EventFirstTimestamp, priority: 1),
        TableColumn.Str("Count", ColumnDocs.EventCount, priority: 1),
        TableColumn.NameColumn with { Priority = 1 },
    ];

    public JsonArray Cells(JsonObject ev, DateTimeOffset now)
    {
        // Events from the events.k8s.io API carry eventTime and series instead of the timestamps and count.
        var firstTimestamp = JsonRead.Time(ev, "firstTimestamp") is { } first
            ? HumanDuration.Since(first, now)
            : HumanDuration.Since(JsonRead.Time(ev, "eventTime"), now);
        var lastTimestamp = JsonRead.Time(ev, "lastTimestamp") is { } last
            ? HumanDuration.Since(last, now)
            : firstTimestamp;

        var count = JsonRead.Int(ev, "count");
        if (JsonRead.Object(ev, "series") is { } series)
        {
            lastTimestamp = HumanDuration.Since(JsonRead.Time(series, "lastObservedTime"), now);
            count = JsonRead.Int(series, "count");
        }
        else if (count == 0)
        {
            count = 1;
        }

        var kind = JsonRead.String(ev, "involvedObject", "kind").ToLowerInvariant();
        var name = JsonRead.String(ev, "involvedObject", "name");
        var target = name.Length > 0 ? $"{kind}/{name}" : kind;

        return
        [
            lastTimestamp,
            JsonRead.String(ev, "type"),
            JsonRead.String(ev, "reason"),
            target,
            JsonRead.String(ev, "involvedObject", "fieldPath"),
            Source(ev),
            JsonRead.String(ev, "message").Trim(),
            firstTimestamp,
            count,
            JsonRead.String(ev, "metadata", "name"),
        ];
    }

    /// <summary>"component, host", falling back to reportingComponent / reportingInstance, without the host when there is none.</summary>
    private static string Source(JsonObject ev)
    {
        var component = FirstNonEmpty(JsonRead.String(ev, "source", "component"), JsonRead.String(ev, "reportingComponent"));
        var instance = FirstNonEmpty(JsonRead.String(ev, "source", "host"), JsonRead.String(ev, "reportingInstance"));
        return instance.Length == 0 ? component : $"{component}, {instance}";
    }

    private static string FirstNonEmpty(string first, string second) => first.Length > 0 ? first : second;
}
