namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// What strategic merge patch must know about one API struct: the fields that are not merged the default way
/// (objects recursively, lists replaced whole), or that lead to a struct which has such fields.
/// </summary>
internal sealed class PatchType
{
    private readonly Dictionary<string, PatchField> _fields;

    public PatchType(params (string Name, PatchField Field)[] fields) =>
        _fields = fields.ToDictionary(f => f.Name, f => f.Field, StringComparer.Ordinal);

    /// <summary>The field's patch metadata, or null for a field merged the default way.</summary>
    public PatchField? Field(string name) => _fields.GetValueOrDefault(name);
}

/// <summary>
/// One field's Kubernetes patch metadata: <c>patchStrategy:"merge"</c> (<see cref="Merge"/>) with its
/// <c>patchMergeKey</c> (<see cref="MergeKey"/>; none for a list of primitives merged as a set), and the
/// struct the field holds, or each list element is (<see cref="Type"/>).
/// </summary>
internal sealed record PatchField(bool Merge, string? MergeKey, PatchType? Type)
{
    /// <summary>A list of primitives merged as a set (e.g. metadata.finalizers).</summary>
    public static readonly PatchField MergeSet = new(true, null, null);

    /// <summary>A list of objects merged by <paramref name="mergeKey"/>, each element of <paramref name="element"/> when it has rules of its own.</summary>
    public static PatchField MergeByKey(string mergeKey, PatchType? element = null) => new(true, mergeKey, element);

    /// <summary>An object field (merged recursively, the default) whose own fields have rules.</summary>
    public static PatchField Struct(PatchType type) => new(false, null, type);
}
