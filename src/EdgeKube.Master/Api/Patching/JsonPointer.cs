using System.Globalization;
using System.Text;

namespace EdgeKube.Master.Api.Patching;

/// <summary>RFC 6901 JSON pointers, as RFC 6902 operations address values.</summary>
internal static class JsonPointer
{
    /// <summary>The reference tokens of a pointer, unescaped; "" (the whole document) has none.</summary>
    public static string[] Parse(string pointer)
    {
        if (pointer.Length == 0)
        {
            return [];
        }
        if (pointer[0] != '/')
        {
            throw new PatchException($"invalid JSON pointer \"{pointer}\": it must be empty or start with \"/\"");
        }
        var tokens = pointer[1..].Split('/');
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = Unescape(tokens[i], pointer);
        }
        return tokens;
    }

    /// <summary>An array index token: "0" or digits without a leading zero (RFC 6901 section 4), within int range.</summary>
    public static bool TryParseIndex(string token, out int index)
    {
        index = -1;
        if (token.Length == 0 || (token.Length > 1 && token[0] == '0') || !token.All(char.IsAsciiDigit))
        {
            return false;
        }
        return int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out index);
    }

    // "~1" before "~0" is what makes "~01" mean "~1" and not "/" (RFC 6901 section 4); one left-to-right pass does that.
    private static string Unescape(string token, string pointer)
    {
        if (!token.Contains('~', StringComparison.Ordinal))
        {
            return token;
        }
        var text = new StringBuilder(token.Length);
        for (int i = 0; i < token.Length; i++)
        {
            if (token[i] != '~')
            {
                text.Append(token[i]);
                continue;
            }
            char next = i + 1 < token.Length ? token[i + 1] : '\0';
            text.Append(next switch
            {
                '0' => '~',
                '1' => '/',
                _ => throw new PatchException($"invalid JSON pointer \"{pointer}\": \"~\" must be followed by 0 or 1"),
            });
            i++;
        }
        return text.ToString();
    }
}
