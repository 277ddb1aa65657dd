namespace EdgeKube.Master.Api.Selectors;

/// <summary>The operators of apimachinery's label selection package; the selector grammar spells them "in", "notin", "=", "==", "!=", "", "!", "&gt;", "&lt;".</summary>
public enum LabelOperator
{
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}
