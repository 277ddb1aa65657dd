using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// A field selector (the <c>fieldSelector</c> query parameter) as apimachinery's fields.ParseSelector reads it:
/// comma-separated <c>path=value</c>, <c>path==value</c> or <c>path!=value</c> terms, ANDed; <c>\,</c>, <c>\=</c>
/// and <c>\\</c> escape those characters in values. Immutable.
/// </summary>
/// <remarks>
/// A path is a dotted JSON path into the object (metadata.name, spec.nodeName, involvedObject.kind ...).
/// Values compare as the API server's field sets print them: a missing field as "", booleans as "true"/"false",
/// numbers in decimal. Three upstream spellings are kept: <c>spec.host</c> means spec.nodeName (old clients),
/// an Event's <c>source</c> means source.component, and the booleans spec.unschedulable and spec.hostNetwork
/// read "false" when absent (a Go bool is never missing). Which paths a resource accepts is not checked here.
/// </remarks>
public sealed class FieldSelector
{
    private readonly FieldRequirement[] _requirements;

    private FieldSelector(FieldRequirement[] requirements) => _requirements = requirements;

    /// <summary>Matches every object.</summary>
    public static FieldSelector Everything { get; } = new([]);

    /// <summary>True when there are no terms.</summary>
    public bool IsEmpty => _requirements.Length == 0;

    /// <summary>The terms, in upstream's order (sorted by their text).</summary>
    public IReadOnlyList<FieldRequirement> Requirements => _requirements;

    /// <summary>fields.ParseSelector; null or "" selects everything. Throws <see cref="SelectorException"/> with the API server's message.</summary>
    public static FieldSelector Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return Everything;
        }

        var terms = SplitTerms(text);
        terms.Sort(StringComparer.Ordinal);
        var requirements = new List<FieldRequirement>();
        foreach (var term in terms)
        {
            if (term.Length == 0)
            {
                continue;
            }

            if (!TrySplitTerm(term, out var field, out var op, out var rawValue))
            {
                throw new SelectorException($"invalid selector: '{text}'; can't understand '{term}'");
            }

            requirements.Add(new FieldRequirement(field, op, Unescape(rawValue)));
        }

        return new FieldSelector([.. requirements]);
    }

    /// <summary>Whether every term holds for <paramref name="obj"/>.</summary>
    public bool Matches(JsonObject obj)
    {
        foreach (var requirement in _requirements)
        {
            var actual = ValueOf(obj, requirement.Field);
            var equal = string.Equals(actual, requirement.Value, StringComparison.Ordinal);
            if (equal == (requirement.Operator == FieldOperator.NotEquals))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The single value <paramref name="field"/> must have (an = or == term), for index lookups such as pods by spec.nodeName.</summary>
    public bool TryGetExactMatch(string field, out string value)
    {
        foreach (var requirement in _requirements)
        {
            if (requirement.Field == field && requirement.Operator == FieldOperator.Equals)
            {
                value = requirement.Value;
                return true;
            }
        }

        value = "";
        return false;
    }

    /// <summary>The canonical form, as upstream's Selector.String(): terms joined by ",", values escaped.</summary>
    public override string ToString() => string.Join(',', _requirements.Select(r => r.ToString()));

    /// <summary>The value a field selector compares for <paramref name="field"/> on <paramref name="obj"/>.</summary>
    public static string ValueOf(JsonObject obj, string field)
    {
        var path = field switch
        {
            "spec.host" => "spec.nodeName",
            "source" when obj["source"] is JsonObject => "source.component",
            _ => field,
        };

        JsonNode? node = obj;
        foreach (var name in path.Split('.'))
        {
            node = node is JsonObject current && current.TryGetPropertyValue(name, out var child) ? child : null;
            if (node is null)
            {
                break;
            }
        }

        if (node is null)
        {
            return path is "spec.unschedulable" or "spec.hostNetwork" ? "false" : "";
        }

        return node.GetValueKind() switch
        {
            JsonValueKind.String => node.GetValue<string>(),
            JsonValueKind.True => "true",
            JsonValueKind.False => "false",
            JsonValueKind.Number => node.ToJsonString(),
            JsonValueKind.Null => "",
            _ => node.ToJsonString(),
        };
    }

    /// <summary>Escapes \, "," and "=" in a value, as fields.EscapeValue.</summary>
    public static string EscapeValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal).Replace("=", "\\=", StringComparison.Ordinal);

    // Commas split terms unless escaped; the backslash stays for Unescape to handle.
    private static List<string> SplitTerms(string text)
    {
        var terms = new List<string>();
        var start = 0;
        var inSlash = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (inSlash)
            {
                inSlash = false;
            }
            else if (c == '\\')
            {
                inSlash = true;
            }
            else if (c == ',')
            {
                terms.Add(text[start..i]);
                start = i + 1;
            }
        }

        terms.Add(text[start..]);
        return terms;
    }

    // The first operator from the left splits the term; "!=" and "==" win over "=" at the same place.
    private static bool TrySplitTerm(string term, out string field, out FieldOperator op, out string value)
    {
        for (var i = 0; i < term.Length; i++)
        {
            var rest = term.AsSpan(i);
            var (length, found) = rest.StartsWith("!=") ? (2, FieldOperator.NotEquals)
                : rest.StartsWith("==") ? (2, FieldOperator.Equals)
                : rest.StartsWith("=") ? (1, FieldOperator.Equals)
                : (0, FieldOperator.Equals);
            if (length > 0)
            {
                field = term[..i];
                op = found;
                value = term[(i + length)..];
                return true;
            }
        }

        field = value = "";
        op = FieldOperator.Equals;
        return false;
    }

    // fields.UnescapeValue: \\, \, and \= are the only escapes; a bare "," or "=" in a value is an error.
    private static string Unescape(string value)
    {
        if (value.AsSpan().IndexOfAny('\\', ',', '=') < 0)
        {
            return value;
        }

        var text = new StringBuilder(value.Length);
        var inSlash = false;
        foreach (var rune in value.EnumerateRunes())
        {
            if (inSlash)
            {
                if (rune.Value is not ('\\' or ',' or '='))
                {
                    throw new SelectorException($"invalid field selector: invalid escape sequence: \\{rune}");
                }

                text.Append(rune.ToString());
                inSlash = false;
                continue;
            }

            switch (rune.Value)
            {
                case '\\':
                    inSlash = true;
                    break;
                case ',' or '=':
                    // Go prints the rune with %v, i.e. its code point.
                    throw new SelectorException(string.Create(CultureInfo.InvariantCulture, $"invalid field selector: unescaped character in value: {rune.Value}"));
                default:
                    text.Append(rune.ToString());
                    break;
            }
        }

        if (inSlash)
        {
            throw new SelectorException("invalid field selector: invalid escape sequence: \\");
        }

        return text.ToString();
    }
}
