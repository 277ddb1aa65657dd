using System.Globalization;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printJob: NAME, STATUS, COMPLETIONS, DURATION, AGE and, wide, CONTAINERS, IMAGES, SELECTOR.</summary>
internal sealed class JobPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Status", ColumnDocs.JobStatus),
        TableColumn.Str("Completions", ColumnDocs.JobSucceeded),
        TableColumn.Str("Duration", ColumnDocs.JobDuration),
        TableColumn.AgeColumn,
        TableColumn.Str("Containers", ColumnDocs.Containers, priority: 1),
        TableColumn.Str("Images", ColumnDocs.Images, priority: 1),
        TableColumn.Str("Selector", ColumnDocs.JobSelector, priority: 1),
    ];

    public JsonArray Cells(JsonObject job, DateTimeOffset now)
    {
        var succeeded = JsonRead.Int(job, "status", "succeeded");
        string completions;
        if (JsonRead.IntOrNull(job, "spec", "completions") is { } wanted)
        {
            completions = string.Create(CultureInfo.InvariantCulture, $"{succeeded}/{wanted}");
        }
        else
        {
            var parallelism = JsonRead.Int(job, "spec", "parallelism");
            completions = parallelism > 1
                ? string.Create(CultureInfo.InvariantCulture, $"{succeeded}/1 of {parallelism}")
                : string.Create(CultureInfo.InvariantCulture, $"{succeeded}/1");
        }

        var start = JsonRead.Time(job, "status", "startTime");
        var completion = JsonRead.Time(job, "status", "completionTime");
        var duration = start is not { } started ? ""
            : completion is { } completed ? HumanDuration.Format(completed - started)
            : HumanDuration.Format(now - started);

        var (names, images) = Workloads.ContainerCells(job);
        return
        [
            JsonRead.String(job, "metadata", "name"),
            Status(job),
            completions,
            duration,
            HumanDuration.Since(JsonRead.Time(job, "metadata", "creationTimestamp"), now),
            names,
            images,
            Workloads.FormatLabelSelector(JsonRead.Node(job, "spec", "selector")),
        ];
    }

    private static string Status(JsonObject job)
    {
        if (HasCondition(job, "Complete"))
        {
            return "Complete";
        }

        if (HasCondition(job, "Failed"))
        {
            return "Failed";
        }

        if (JsonRead.Has(job, "metadata", "deletionTimestamp"))
        {
            return "Terminating";
        }

        if (HasCondition(job, "Suspended"))
        {
            return "Suspended";
        }

        return HasCondition(job, "FailureTarget") ? "FailureTarget" : "Running";
    }

    // The first condition of the type decides.
    private static bool HasCondition(JsonObject job, string type) =>
        JsonRead.Objects(job, "status", "conditions").FirstOrDefault(c => JsonRead.String(c, "type") == type) is { } condition
        && JsonRead.String(condition, "status") == "True";
}
