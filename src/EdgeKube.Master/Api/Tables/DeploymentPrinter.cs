using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;

namespace EdgeKube.Master.Api.Tables;

/// <summary>kube-apiserver's printDeployment: NAME, READY, UP-TO-DATE, AVAILABLE, AGE and, wide, CONTAINERS, IMAGES, SELECTOR.</summary>
internal sealed class DeploymentPrinter : ITablePrinter
{
    public IReadOnlyList<TableColumn> Columns { get; } =
    [
        TableColumn.NameColumn,
        TableColumn.Str("Ready", ColumnDocs.ReadyPods),
        TableColumn.Str("Up-to-date", ColumnDocs.DeploymentUpdatedReplicas),
        TableColumn.Str("Available", ColumnDocs.DeploymentAvailableReplicas),
        TableColumn.AgeColumn,
        TableColumn.Str("Containers", ColumnDocs.Containers, priority: 1),
        TableColumn.Str("Images", ColumnDocs.Images, priority: 1),
        TableColumn.Str("Selector", ColumnDocs.DeploymentSelector, priority: 1),
    ];

    public JsonArray Cells(JsonObject deployment, DateTimeOffset now)
    {
        var (names, images) = Workloads.ContainerCells(deployment);
        string selector;
        try
        {
            selector = LabelSelector.FromJson(JsonRead.Node(deployment, "spec", "selector")).ToString();
        }
        catch (SelectorException)
        {
            selector = "<invalid>";
        }

        return
        [
            JsonRead.String(deployment, "metadata", "name"),
            string.Create(CultureInfo.InvariantCulture, $"{JsonRead.Int(deployment, "status", "readyReplicas")}/{Workloads.DesiredReplicas(deployment)}"),
            JsonRead.Int(deployment, "status", "updatedReplicas"),
            JsonRead.Int(deployment, "status", "availableReplicas"),
            HumanDuration.Since(JsonRead.Time(deployment, "metadata", "creationTimestamp"), now),
            names,
            images,
            selector,
        ];
    }
}
