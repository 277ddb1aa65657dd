using System.Globalization;
using System.Text;

namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// One term of a label selector: a key, an operator and its values (one for =, ==, !=, &gt;, &lt;; one or more
/// for in/notin; none for exists and !). Made only through <see cref="Create"/>, which validates as
/// apimachinery's labels.NewRequirement does.
/// </summary>
public sealed class LabelRequirement
{
    private readonly string[] _values;

    private LabelRequirement(string key, LabelOperator op, string[] values)
    {
        Key = key;
        Operator = op;
        _values = values;
    }

    public string Key { get; }

    public LabelOperator Operator { get; }

    /// <summary>The values in the order given (the parser gives them sorted and without duplicates).</summary>
    public IReadOnlyList<string> Values => _values;

    /// <summary>
    /// labels.NewRequirement: throws <see cref="SelectorException"/> with all problems aggregated when the key
    /// is not a qualified name, the value count does not suit the operator, or a value is not a label value.
    /// </summary>
    public static LabelRequirement Create(string key, LabelOperator op, IReadOnlyList<string>? values)
    {
        var errors = new List<string>();
        if (LabelValidation.QualifiedNameErrors(key) is { Count: > 0 } keyErrors)
        {
            errors.Add(GoFormat.Invalid("key", key, string.Join("; ", keyErrors)));
        }

        var count = values?.Count ?? 0;
        switch (op)
        {
            case LabelOperator.In or LabelOperator.NotIn when count == 0:
                errors.Add(GoFormat.Invalid("values", values, "for 'in', 'notin' operators, values set can't be empty"));
                break;
            case LabelOperator.Equals or LabelOperator.DoubleEquals or LabelOperator.NotEquals when count != 1:
                errors.Add(GoFormat.Invalid("values", values, "exact-match compatibility requires one single value"));
                break;
            case LabelOperator.Exists or LabelOperator.DoesNotExist when count != 0:
                errors.Add(GoFormat.Invalid("values", values, "values set must be empty for exists and does not exist"));
                break;
            case LabelOperator.GreaterThan or LabelOperator.LessThan:
                if (count != 1)
                {
                    errors.Add(GoFormat.Invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required"));
                }

                for (var i = 0; i < count; i++)
                {
                    if (!TryParseInt(values![i], out _))
                    {
                        errors.Add(GoFormat.Invalid(Index("values", i), values[i], "for 'Gt', 'Lt' operators, the value must be an integer"));
                    }
                }

                break;
        }

        for (var i = 0; i < count; i++)
        {
            if (LabelValidation.LabelValueErrors(values![i]) is { Count: > 0 } valueErrors)
            {
                errors.Add(GoFormat.Invalid($"{Index("values", i)}[{key}]", values[i], string.Join("; ", valueErrors)));
            }
        }

        if (errors.Count > 0)
        {
            throw new SelectorException(GoFormat.Aggregate(errors));
        }

        return new LabelRequirement(key, op, values?.ToArray() ?? []);
    }

    /// <summary>Whether the labels satisfy this term; a missing key satisfies only notin, != and !.</summary>
    public bool Matches(IReadOnlyDictionary<string, string> labels)
    {
        var has = labels.TryGetValue(Key, out var value);
        switch (Operator)
        {
            case LabelOperator.In or LabelOperator.Equals or LabelOperator.DoubleEquals:
                return has && _values.Contains(value, StringComparer.Ordinal);
            case LabelOperator.NotIn or LabelOperator.NotEquals:
                return !has || !_values.Contains(value, StringComparer.Ordinal);
            case LabelOperator.Exists:
                return has;
            case LabelOperator.DoesNotExist:
                return !has;
            case LabelOperator.GreaterThan or LabelOperator.LessThan:
                if (!has || _values.Length != 1 || !TryParseInt(value!, out var actual) || !TryParseInt(_values[0], out var bound))
                {
                    return false;
                }

                return Operator == LabelOperator.GreaterThan ? actual > bound : actual < bound;
            default:
                return false;
        }
    }

    /// <summary>The term as the selector grammar writes it ("!a", "a=b", "a in (x,y)" with sorted values), as Requirement.String().</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        if (Operator == LabelOperator.DoesNotExist)
        {
            text.Append('!');
        }

        text.Append(Key);
        switch (Operator)
        {
            case LabelOperator.Exists or LabelOperator.DoesNotExist:
                return text.ToString();
            case LabelOperator.Equals:
                text.Append('=');
                break;
            case LabelOperator.DoubleEquals:
                text.Append("==");
                break;
            case LabelOperator.NotEquals:
                text.Append("!=");
                break;
            case LabelOperator.In:
                text.Append(" in ");
                break;
            case LabelOperator.NotIn:
                text.Append(" notin ");
                break;
            case LabelOperator.GreaterThan:
                text.Append('>');
                break;
            case LabelOperator.LessThan:
                text.Append('<');
                break;
        }

        var isSet = Operator is LabelOperator.In or LabelOperator.NotIn;
        if (isSet)
        {
            text.Append('(');
        }

        text.Append(string.Join(',', _values.Order(StringComparer.Ordinal)));
        if (isSet)
        {
            text.Append(')');
        }

        return text.ToString();
    }

    // strconv.ParseInt(s, 10, 64): an optional sign and decimal digits, nothing else.
    private static bool TryParseInt(string text, out long value) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    private static string Index(string path, int index) => string.Create(CultureInfo.InvariantCulture, $"{path}[{index}]");
}
