using System.Diagnostics;
using System.Globalization;
using System.Text;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Infra;

/// <summary>One look at a process through /proc: memory, CPU time, threads, open files.</summary>
public sealed record ProcSample(long RssBytes, long PeakRssBytes, double CpuSeconds, int Threads, int Fds, DateTime At)
{
    public static ProcSample Of(int pid)
    {
        long rss = 0, hwm = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kb(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                hwm = Kb(line);
            }
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = int.Parse(line["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        // /proc/PID/stat: fields after the ")" of comm; utime and stime are fields 14 and 15, in clock ticks (100 Hz on Linux).
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        var fds = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        return new ProcSample(rss, hwm, ticks / 100.0, threads, fds, DateTime.UtcNow);
    }

    private static long Kb(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

/// <summary>Running helper processes.</summary>
public static class Run
{
    public static Task<(int Code, string Output)> ProcessAsync(string file, IEnumerable<string> args, string? stdin = null, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync(file, args, timeout ?? TimeSpan.FromMinutes(5), stdin);

    public static async Task<string> CheckedAsync(string file, params string[] args)
    {
        var (code, output) = await ProcessAsync(file, args);
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({code}):\n{output}");
        }

        return output;
    }

    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Polls until <paramref name="condition"/> holds; throws with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, int intervalMs = 100)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("timed out waiting for " + what);
            }

            await Task.Delay(intervalMs);
        }
    }
}

/// <summary>The last lines a child process wrote, for failure messages.</summary>
public sealed class LogTail(int lines = 300)
{
    private readonly Queue<string> _lines = new();

    /// <summary>Called with every line as it arrives (the trace scenario reads timestamps from them).</summary>
    public event Action<string>? LineAdded;

    public void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        LineAdded?.Invoke(line);

        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > lines)
            {
                _lines.Dequeue();
            }
        }
    }

    public bool Contains(string text)
    {
        lock (_lines)
        {
            return _lines.Any(l => l.Contains(text, StringComparison.Ordinal));
        }
    }

    public override string ToString()
    {
        lock (_lines)
        {
            var sb = new StringBuilder();
            foreach (var l in _lines.TakeLast(40))
            {
                sb.AppendLine(l);
            }

            return sb.ToString();
        }
    }
}
