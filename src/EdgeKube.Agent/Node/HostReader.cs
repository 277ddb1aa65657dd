using System.Diagnostics;
using System.Globalization;

namespace EdgeKube.Agent.Node;

/// <summary>
/// Reads the machine's figures from procfs and sysfs under roots given at construction
/// (<c>--procfs-root</c>, <c>--sysfs-root</c>), so tests hand it a directory of files.
/// Every read tolerates a missing or garbled file: the figure is then null.
/// </summary>
public sealed class HostReader(string procRoot = "/proc", string sysRoot = "/sys")
{
    /// <summary>The Raspberry Pi firmware's throttled flags, relative to the sysfs root.</summary>
    public const string ThrottledFile = "devices/platform/soc/soc:firmware/get_throttled";

    private bool _vcgencmdMissing;

    public string ProcRoot => procRoot;

    public string SysRoot => sysRoot;

    /// <summary>Falls back to <c>vcgencmd get_throttled</c> when the sysfs file is absent (only with the real sysfs root).</summary>
    public bool UseVcgencmd { get; init; } = sysRoot == "/sys";

    /// <summary>MemTotal and MemAvailable, in bytes.</summary>
    public (long Total, long Available)? Memory()
    {
        Span<byte> buffer = stackalloc byte[PageSize];
        var text = Read(Path.Combine(procRoot, "meminfo"), buffer);
        long? total = null, available = null;
        // Both are among the first lines (the page read holds them).
        foreach (var range in text.Split((byte)'\n'))
        {
            var line = text[range];
            if (line.StartsWith("MemTotal:"u8))
            {
                total = Kibibytes(line["MemTotal:".Length..]);
            }
            else if (line.StartsWith("MemAvailable:"u8))
            {
                available = Kibibytes(line["MemAvailable:".Length..]);
            }

            if (total is not null && available is not null)
            {
                break;
            }
        }

        return total is { } t && available is { } a ? (t, a) : null;

        static long? Kibibytes(ReadOnlySpan<byte> rest) =>
            Field(rest, 0) is var kib && long.TryParse(kib, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value * 1024 : null;
    }

    /// <summary>The kernel's PID limit and the number of tasks that exist now (as kubelet's pid.available signal).</summary>
    public (long Max, long Used)? Pids()
    {
        var max = Number(Path.Combine(procRoot, "sys/kernel/pid_max"));
        Span<byte> buffer = stackalloc byte[PageSize];
        // loadavg's fourth field is running/total scheduling entities (threads), which is what pid_max limits.
        var tasks = Field(FirstLine(Read(Path.Combine(procRoot, "loadavg"), buffer)), 3);
        long? used = null;
        if (tasks.IndexOf((byte)'/') is >= 0 and var slash
            && long.TryParse(tasks[(slash + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
        {
            used = n;
        }

        return max is { } m && used is { } u && m > 0 ? (m, u) : null;
    }

    /// <summary>Total CPU time of the machine (all cpus, user to steal), in seconds since boot, from /proc/stat.</summary>
    public double? CpuSecondsTotal()
    {
        Span<byte> buffer = stackalloc byte[PageSize];
        var line = FirstLine(Read(Path.Combine(procRoot, "stat"), buffer));
        if (!line.StartsWith("cpu "u8))
        {
            return null;
        }

        double busy = 0;
        // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
        for (var i = 1; i < 9; i++)
        {
            var field = Field(line, i);
            if (field.IsEmpty)
            {
                break;
            }

            if (i is 4 or 5)
            {
                continue;
            }

            if (!long.TryParse(field, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ticks))
            {
                return null;
            }

            busy += ticks;
        }

        return busy / 100.0; // USER_HZ is 100 on every Linux the agent runs on.
    }

    /// <summary>A thermal zone's temperature in °C (<c>{sysfs}/class/thermal/{zone}/temp</c>, millidegrees).</summary>
    public double? ThermalZoneCelsius(string zone)
    {
        var value = Number(Path.Combine(sysRoot, "class/thermal", zone, "temp"));
        return value is { } milli ? milli / 1000.0 : null;
    }

    /// <summary>The firmware's throttled bit field, from sysfs or vcgencmd; null off a Raspberry Pi.</summary>
    public uint? Throttled()
    {
        Span<byte> buffer = stackalloc byte[PageSize];
        var text = Read(Path.Combine(sysRoot, ThrottledFile), buffer);
        if (text.IsEmpty && UseVcgencmd && !_vcgencmdMissing && Vcgencmd() is { } output)
        {
            text = System.Text.Encoding.UTF8.GetBytes(output);
        }

        text = text.Trim(" \t\r\n\0"u8);
        if (text.IsEmpty)
        {
            return null;
        }

        if (text.StartsWith("throttled="u8))
        {
            text = text["throttled=".Length..];
        }

        var hex = text.StartsWith("0x"u8) || text.StartsWith("0X"u8);
        return uint.TryParse(hex ? text[2..] : text, hex ? NumberStyles.HexNumber : NumberStyles.Integer, CultureInfo.InvariantCulture, out var flags) ? flags : null;
    }

    private string? Vcgencmd()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("vcgencmd", "get_throttled") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false });
            if (p is null)
            {
                _vcgencmdMissing = true;
                return null;
            }

            var output = p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(2000) || p.ExitCode != 0)
            {
                return null;
            }

            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            _vcgencmdMissing = true;
            return null;
        }
    }

    /// <summary>
    /// What a sample reads of each file: procfs and sysfs put these figures in their first page. The
    /// node status is sampled every second; reading into a stack buffer instead of a StreamReader (its
    /// own byte and char buffers, a string per line) keeps a sample from allocating for the GC.
    /// </summary>
    private const int PageSize = 4096;

    private static long? Number(string path)
    {
        Span<byte> buffer = stackalloc byte[64];
        return long.TryParse(FirstLine(Read(path, buffer)).Trim(" \t\r\0"u8), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
    }

    /// <summary>The start of the file, as much as <paramref name="buffer"/> holds; empty when it cannot be read.</summary>
    private static ReadOnlySpan<byte> Read(string path, Span<byte> buffer)
    {
        // Off a Raspberry Pi the thermal and firmware files are absent: one stat, not an exception per sample.
        if (!File.Exists(path))
        {
            return [];
        }

        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var total = 0;
            while (total < buffer.Length && RandomAccess.Read(handle, buffer[total..], total) is > 0 and var n)
            {
                total += n;
            }

            return buffer[..total];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return [];
        }
    }

    private static ReadOnlySpan<byte> FirstLine(ReadOnlySpan<byte> text) =>
        text.IndexOf((byte)'\n') is >= 0 and var end ? text[..end] : text;

    /// <summary>The <paramref name="index"/>th field of <paramref name="line"/> separated by spaces or tabs (empty when there are fewer).</summary>
    private static ReadOnlySpan<byte> Field(ReadOnlySpan<byte> line, int index)
    {
        var i = 0;
        while (true)
        {
            line = line.TrimStart(" \t"u8);
            if (line.IsEmpty)
            {
                return [];
            }

            var end = line.IndexOfAny((byte)' ', (byte)'\t');
            var field = end < 0 ? line : line[..end];
            if (i++ == index)
            {
                return field;
            }

            line = line[field.Length..];
        }
    }

    internal static string? FirstLine(string path) => ReadLines(path).FirstOrDefault();

    /// <summary>The file's lines, read lazily (a caller that stops early reads no further); none when it cannot be read.</summary>
    internal static IEnumerable<string> ReadLines(string path)
    {
        IEnumerator<string> lines;
        try
        {
            if (!File.Exists(path))
            {
                yield break;
            }

            lines = File.ReadLines(path).GetEnumerator();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        using (lines)
        {
            while (true)
            {
                try
                {
                    if (!lines.MoveNext())
                    {
                        yield break;
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    yield break;
                }

                yield return lines.Current;
            }
        }
    }

    internal static IEnumerable<string> Lines(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllLines(path) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
