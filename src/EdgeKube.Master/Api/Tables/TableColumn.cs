using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// One meta.k8s.io/v1 TableColumnDefinition. Names are as kube-apiserver sends them ("Name", "Up-to-date");
/// kubectl upper-cases them for the header. Priority 0 columns always show, priority 1 only with <c>-o wide</c>.
/// </summary>
public sealed record TableColumn(string Name, string Type, string Format, string Description, int Priority = 0)
{
    /// <summary>Every field written, empty ones included, as Go's encoder does for this type.</summary>
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["type"] = Type,
        ["format"] = Format,
        ["description"] = Description,
        ["priority"] = Priority,
    };

    internal static TableColumn NameColumn { get; } = new("Name", "string", "name", ColumnDocs.ObjectMetaName);

    internal static TableColumn AgeColumn { get; } = new("Age", "string", "", ColumnDocs.ObjectMetaCreationTimestamp);

    internal static TableColumn Str(string name, string description, int priority = 0) => new(name, "string", "", description, priority);

    internal static TableColumn Int(string name, string description, int priority = 0) => new(name, "integer", "", description, priority);
}
