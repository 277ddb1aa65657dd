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
        long? total = null, available = null;
        // Both are among the first lines: read lazily and stop there rather than split the whole file.
        foreach (var line in ReadLines(Path.Combine(procRoot, "meminfo")))
        {
            var isTotal = line.StartsWith("MemTotal:", StringComparison.Ordinal);
            if (!isTotal && !line.StartsWith("MemAvailable:", StringComparison.Ordinal))
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var kib))
            {
                if (isTotal)
                {
                    total = kib * 1024;
                }
                else
                {
                    available = kib * 1024;
                }
            }

            if (total is not null && available is not null)
            {
                break;
            }
        }

        return total is { } t && available is { } a ? (t, a) : null;
    }

    /// <summary>The kernel's PID limit and the number of tasks that exist now (as kubelet's pid.available signal).</summary>
    public (long Max, long Used)? Pids()
    {
        var max = Number(Path.Combine(procRoot, "sys/kernel/pid_max"));
        // loadavg's fourth field is running/total scheduling entities (threads), which is what pid_max limits.
        var fields = FirstLine(Path.Combine(procRoot, "loadavg"))?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long? used = null;
        if (fields is { Length: >= 4 } && fields[3].Split('/') is [_, var total]
            && long.TryParse(total, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
        {
            used = n;
        }

        return max is { } m && used is { } u && m > 0 ? (m, u) : null;
    }

    /// <summary>Total CPU time of the machine (all cpus, user to steal), in seconds since boot, from /proc/stat.</summary>
    public double? CpuSecondsTotal()
    {
        var line = FirstLine(Path.Combine(procRoot, "stat"));
        if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal))
        {
            return null;
        }

        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        double busy = 0;
        // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
        for (var i = 1; i < Math.Min(fields.Length, 9); i++)
        {
            if (i is 4 or 5)
            {
                continue;
            }

            if (!long.TryParse(fields[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ticks))
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
        var text = FirstLine(Path.Combine(sysRoot, ThrottledFile));
        if (text is null && UseVcgencmd && !_vcgencmdMissing)
        {
            text = Vcgencmd();
        }

        if (text is null)
        {
            return null;
        }

        text = text.Trim();
        if (text.StartsWith("throttled=", StringComparison.Ordinal))
        {
            text = text["throttled=".Length..];
        }

        var hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
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

    private static long? Number(string path) =>
        long.TryParse(FirstLine(path)?.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

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
