using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// Builds the meta.k8s.io/v1 Table that kube-apiserver returns when a client (kubectl get) asks for
/// <c>Accept: application/json;as=Table;v=v1;g=meta.k8s.io</c>, with the columns and cells of
/// kube-apiserver 1.32's printers for pods, nodes, namespaces, events, services, deployments,
/// replicasets, daemonsets and jobs, and NAME/AGE for everything else.
/// </summary>
/// <remarks>
/// <para>Every column is always sent, the priority-1 (wide) ones included: the API server prints wide and
/// kubectl hides priority-1 columns unless asked for <c>-o wide</c>.</para>
/// <para><c>includeObject</c> is the TableOptions query parameter. kubectl 1.32 sends <c>includeObject=Object</c>
/// only with <c>--sort-by</c> (and <c>kubectl get</c> of a file's objects); otherwise it sends nothing and the
/// API server embeds each object as PartialObjectMetadata, whose metadata kubectl reads for the NAMESPACE
/// column of <c>-A</c> and for <c>--show-labels</c>/<c>-L</c>.</para>
/// <para>Watches: each event's object is a one-row Table. The first event of a watch carries the column
/// definitions, later ones <c>"columnDefinitions": null</c>, as kube-apiserver's watch encoder switches to
/// NoHeaders after the first event. <see cref="TableWatchEncoder"/> keeps that state for one watch.</para>
/// </remarks>
public static class TableWriter
{
    /// <summary>includeObject=Metadata (the default): rows carry the object as PartialObjectMetadata.</summary>
    public const string IncludeMetadata = "Metadata";

    /// <summary>includeObject=Object: rows carry the whole object.</summary>
    public const string IncludeObject = "Object";

    /// <summary>includeObject=None: rows carry no object ("object": null).</summary>
    public const string IncludeNone = "None";

    private const string TableApiVersion = "meta.k8s.io/v1";

    private static readonly ITablePrinter Fallback = new DefaultPrinter();

    private static readonly Dictionary<string, ITablePrinter> Printers = CreatePrinters();

    /// <summary>
    /// The includeObject value to use: <see cref="IncludeMetadata"/> for null or "", the value itself when it is
    /// one of the three; otherwise throws <see cref="TableOptionsException"/> with the API server's 400 message.
    /// Call it before a watch starts streaming, where an error can still be a plain 400.
    /// </summary>
    public static string NormalizeIncludeObject(string? includeObject) => includeObject switch
    {
        null or "" or IncludeMetadata => IncludeMetadata,
        IncludeObject => IncludeObject,
        IncludeNone => IncludeNone,
        _ => throw new TableOptionsException(
            $"Unable to convert to Table as requested: includeObject: Invalid value: {GoFormat.Quote(includeObject)}: must be 'Metadata', 'Object', 'None', or empty"),
    };

    /// <summary>The column definitions of <paramref name="resource"/> ("pods", "deployments.apps", ...), wide ones included.</summary>
    public static JsonArray ColumnDefinitions(string resource) => [.. PrinterFor(resource).Columns.Select(c => (JsonNode)c.ToJson())];

    /// <summary>
    /// The Table for a list (or, with one item, a get) of <paramref name="resource"/>. <paramref name="resourceVersion"/>
    /// goes to metadata.resourceVersion (the list's, or the object's for a get); <paramref name="continueToken"/> and
    /// <paramref name="remainingItemCount"/> to metadata when paging. Ages are counted to <paramref name="now"/>.
    /// Throws <see cref="TableOptionsException"/> for an unknown includeObject.
    /// </summary>
    public static JsonObject ToTable(
        string resource,
        IReadOnlyList<JsonObject> items,
        string resourceVersion,
        string? includeObject,
        DateTimeOffset now,
        string? continueToken = null,
        long? remainingItemCount = null)
    {
        var include = NormalizeIncludeObject(includeObject);
        var printer = PrinterFor(resource);
        var rows = new JsonArray();
        foreach (var item in items)
        {
            rows.Add(Row(printer, item, include, now));
        }

        var metadata = new JsonObject();
        if (resourceVersion.Length > 0)
        {
            metadata["resourceVersion"] = resourceVersion;
        }

        if (!string.IsNullOrEmpty(continueToken))
        {
            metadata["continue"] = continueToken;
        }

        if (remainingItemCount is { } remaining)
        {
            metadata["remainingItemCount"] = remaining;
        }

        return Table(metadata, ColumnDefinitions(printer), rows);
    }

    /// <summary>
    /// The one-row Table a watch event carries for <paramref name="item"/>: metadata.resourceVersion is the object's,
    /// and columnDefinitions is the full list when <paramref name="includeColumnDefinitions"/> (first event) or null.
    /// </summary>
    public static JsonObject ToWatchTable(string resource, JsonObject item, string? includeObject, DateTimeOffset now, bool includeColumnDefinitions)
    {
        var include = NormalizeIncludeObject(includeObject);
        var printer = PrinterFor(resource);
        var metadata = new JsonObject();
        if (item["metadata"]?["resourceVersion"] is JsonValue rv && rv.TryGetValue(out string? version) && version.Length > 0)
        {
            metadata["resourceVersion"] = version;
        }

        return Table(metadata, includeColumnDefinitions ? ColumnDefinitions(printer) : null, [Row(printer, item, include, now)]);
    }

    /// <summary>One row (cells, conditions when any, object as <paramref name="includeObject"/> asks).</summary>
    public static JsonObject ToRow(string resource, JsonObject item, string? includeObject, DateTimeOffset now) =>
        Row(PrinterFor(resource), item, NormalizeIncludeObject(includeObject), now);

    internal static ITablePrinter PrinterFor(string resource) =>
        Printers.TryGetValue(resource, out var printer) ? printer : Fallback;

    private static JsonObject Row(ITablePrinter printer, JsonObject item, string include, DateTimeOffset now)
    {
        var row = new JsonObject { ["cells"] = printer.Cells(item, now) };
        if (printer.Conditions(item) is { } conditions)
        {
            row["conditions"] = conditions;
        }

        row["object"] = include switch
        {
            IncludeObject => item.DeepClone(),
            IncludeNone => null,
            _ => new JsonObject
            {
                ["kind"] = "PartialObjectMetadata",
                ["apiVersion"] = TableApiVersion,
                ["metadata"] = item["metadata"] is JsonObject metadata ? metadata.DeepClone() : new JsonObject(),
            },
        };
        return row;
    }

    private static JsonObject Table(JsonObject metadata, JsonArray? columns, JsonArray rows) => new()
    {
        ["kind"] = "Table",
        ["apiVersion"] = TableApiVersion,
        ["metadata"] = metadata,
        ["columnDefinitions"] = columns,
        ["rows"] = rows,
    };

    private static JsonArray ColumnDefinitions(ITablePrinter printer) => [.. printer.Columns.Select(c => (JsonNode)c.ToJson())];

    private static Dictionary<string, ITablePrinter> CreatePrinters()
    {
        var printers = new Dictionary<string, ITablePrinter>(StringComparer.Ordinal);

        // Keyed as the store keys resources ("deployments.apps"); the bare plural is accepted too.
        void Add(ITablePrinter printer, params string[] resources)
        {
            foreach (var resource in resources)
            {
                printers[resource] = printer;
            }
        }

        Add(new PodPrinter(), "pods");
        Add(new NodePrinter(), "nodes");
        Add(new NamespacePrinter(), "namespaces");
        Add(new EventPrinter(), "events");
        Add(new ServicePrinter(), "services");
        Add(new DeploymentPrinter(), "deployments.apps", "deployments");
        Add(new ReplicaSetPrinter(), "replicasets.apps", "replicasets");
        Add(new DaemonSetPrinter(), "daemonsets.apps", "daemonsets");
        Add(new JobPrinter(), "jobs.batch", "jobs");
        return printers;
    }
}
