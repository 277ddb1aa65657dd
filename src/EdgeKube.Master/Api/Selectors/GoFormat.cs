using System.Globalization;
using System.Text;

namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// The bits of Go formatting that apimachinery's validation errors are made of (%q, %#v of a []string,
/// field.Error and utilerrors.Aggregate), so error texts match kube-apiserver's byte for byte.
/// </summary>
internal static class GoFormat
{
    /// <summary>strconv.Quote, for the characters a selector can contain.</summary>
    public static string Quote(string value)
    {
        var text = new StringBuilder(value.Length + 2).Append('"');
        foreach (var rune in value.EnumerateRunes())
        {
            switch (rune.Value)
            {
                case '"':
                    text.Append("\\\"");
                    break;
                case '\\':
                    text.Append("\\\\");
                    break;
                case '\a':
                    text.Append("\\a");
                    break;
                case '\b':
                    text.Append("\\b");
                    break;
                case '\f':
                    text.Append("\\f");
                    break;
                case '\n':
                    text.Append("\\n");
                    break;
                case '\r':
                    text.Append("\\r");
                    break;
                case '\t':
                    text.Append("\\t");
                    break;
                case '\v':
                    text.Append("\\v");
                    break;
                default:
                    if (Rune.IsControl(rune) || Rune.GetUnicodeCategory(rune) is UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.OtherNotAssigned)
                    {
                        text.Append(rune.Value switch
                        {
                            < 0x80 => string.Create(CultureInfo.InvariantCulture, $"\\x{rune.Value:x2}"),
                            < 0x10000 => string.Create(CultureInfo.InvariantCulture, $"\\u{rune.Value:x4}"),
                            _ => string.Create(CultureInfo.InvariantCulture, $"\\U{rune.Value:x8}"),
                        });
                    }
                    else
                    {
                        text.Append(rune.ToString());
                    }

                    break;
            }
        }

        return text.Append('"').ToString();
    }

    /// <summary>%#v of a []string: []string(nil), []string{}, []string{"a", "b"}.</summary>
    public static string StringSlice(IReadOnlyList<string>? values) => values switch
    {
        null => "[]string(nil)",
        { Count: 0 } => "[]string{}",
        _ => "[]string{" + string.Join(", ", values.Select(Quote)) + "}",
    };

    /// <summary>field.Invalid(path, value, detail).Error() for a string value.</summary>
    public static string Invalid(string path, string value, string detail) => $"{path}: Invalid value: {Quote(value)}: {detail}";

    /// <summary>field.Invalid(path, value, detail).Error() for a []string value.</summary>
    public static string Invalid(string path, IReadOnlyList<string>? values, string detail) => $"{path}: Invalid value: {StringSlice(values)}: {detail}";

    /// <summary>ErrorList.ToAggregate().Error(): duplicates dropped, one message as is, several in brackets.</summary>
    public static string Aggregate(IEnumerable<string> messages)
    {
        var distinct = messages.Distinct(StringComparer.Ordinal).ToList();
        return distinct.Count == 1 ? distinct[0] : "[" + string.Join(", ", distinct) + "]";
    }
}
