using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// JSON value equality as RFC 6902's "test" defines it (objects ignore member order, arrays do not, numbers
/// compare by value), also used to match merge keys and primitive list items.
/// </summary>
internal static class JsonEquality
{
    public static bool Equal(JsonNode? a, JsonNode? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }
        switch (a)
        {
            case JsonObject objectA:
                if (b is not JsonObject objectB || objectA.Count != objectB.Count)
                {
                    return false;
                }
                foreach (var (name, valueA) in objectA)
                {
                    if (!objectB.TryGetPropertyValue(name, out var valueB) || !Equal(valueA, valueB))
                    {
                        return false;
                    }
                }
                return true;
            case JsonArray arrayA:
                if (b is not JsonArray arrayB || arrayA.Count != arrayB.Count)
                {
                    return false;
                }
                for (int i = 0; i < arrayA.Count; i++)
                {
                    if (!Equal(arrayA[i], arrayB[i]))
                    {
                        return false;
                    }
                }
                return true;
            default:
                if (b is not JsonValue)
                {
                    return false;
                }
                var kind = a.GetValueKind();
                if (kind != b.GetValueKind())
                {
                    return false;
                }
                return kind switch
                {
                    JsonValueKind.String => string.Equals(a.GetValue<string>(), b.GetValue<string>(), StringComparison.Ordinal),
                    JsonValueKind.Number => NumbersEqual(a.ToJsonString(), b.ToJsonString()),
                    _ => true, // true, false and null carry nothing beyond their kind
                };
        }
    }

    // Through the text, because a parsed number and one built from an int are different JsonValue types.
    private static bool NumbersEqual(string a, string b)
    {
        if (a == b)
        {
            return true;
        }
        const NumberStyles Style = NumberStyles.Float;
        var culture = CultureInfo.InvariantCulture;
        if (decimal.TryParse(a, Style, culture, out var decimalA) && decimal.TryParse(b, Style, culture, out var decimalB))
        {
            return decimalA == decimalB;
        }
        return double.TryParse(a, Style, culture, out var doubleA) && double.TryParse(b, Style, culture, out var doubleB)
            && doubleA == doubleB;
    }
}
