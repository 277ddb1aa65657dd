namespace EdgeKube.Master.Api.Selectors;

/// <summary>The two field selector comparisons; "==" parses as <see cref="FieldOperator.Equals"/>.</summary>
public enum FieldOperator
{
    Equals,
    NotEquals,
}

/// <summary>One field selector term: the field's value must (or must not) equal <see cref="Value"/> (unescaped).</summary>
public sealed record FieldRequirement(string Field, FieldOperator Operator, string Value)
{
    /// <summary>"field=value" or "field!=value", the value escaped, as upstream's term String().</summary>
    public override string ToString() =>
        $"{Field}{(Operator == FieldOperator.NotEquals ? "!=" : "=")}{FieldSelector.EscapeValue(Value)}";
}
