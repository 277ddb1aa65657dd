using System.Globalization;

namespace EdgeKube.Protocol;

/// <summary>
/// Durations as Go's <c>time.ParseDuration</c> reads them (<c>30s</c>, <c>2m</c>, <c>1h30m</c>, <c>1.5s</c>,
/// <c>300ms</c>, <c>-2s</c>, <c>0</c>): what Kubernetes users write in flags and annotations.
/// </summary>
public static class GoDuration
{
    // Go's limit: a duration is an int64 of nanoseconds.
    private const decimal MaxNanoseconds = long.MaxValue;

    /// <summary>Parses <paramref name="text"/>; false (and zero) when it is not a Go duration.</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var s = text.AsSpan();
        var negative = s[0] == '-';
        if (s[0] is '-' or '+')
        {
            s = s[1..];
        }

        if (s is "0")
        {
            return true;
        }

        if (s.IsEmpty)
        {
            return false;
        }

        decimal total = 0;
        while (!s.IsEmpty)
        {
            // A number: digits, optionally a fraction; at least one digit on either side of the point.
            var i = 0;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }

            var digits = i;
            if (i < s.Length && s[i] == '.')
            {
                i++;
                var fraction = i;
                while (i < s.Length && char.IsAsciiDigit(s[i]))
                {
                    i++;
                }

                digits += i - fraction;
            }

            if (digits == 0 || !decimal.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            s = s[i..];
            var unitLength = 0;
            while (unitLength < s.Length && s[unitLength] != '.' && !char.IsAsciiDigit(s[unitLength]))
            {
                unitLength++;
            }

            decimal? unit = s[..unitLength] switch
            {
                "ns" => 1m,
                "us" or "\u00b5s" or "\u03bcs" => 1_000m,
                "ms" => 1_000_000m,
                "s" => 1_000_000_000m,
                "m" => 60_000_000_000m,
                "h" => 3_600_000_000_000m,
                _ => null, // a missing or unknown unit
            };
            if (unit is null || number > MaxNanoseconds / unit.Value)
            {
                return false;
            }

            total += number * unit.Value;
            if (total > MaxNanoseconds)
            {
                return false;
            }

            s = s[unitLength..];
        }

        var ticks = (long)(total / 100m);
        duration = TimeSpan.FromTicks(negative ? -ticks : ticks);
        return true;
    }
}
