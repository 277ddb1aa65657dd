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

    /// <summary>CPU used between <paramref name="earlier"/> and this sample, in % of one core.</summary>
    public double PercentOfCoreSince(ProcSample earlier) => (CpuSeconds - earlier.CpuSeconds) / (At - earlier.At).TotalSeconds * 100;

    private static long Kb(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

/// <summary>
/// Where a process's resident memory is, from /proc/PID/smaps: the executable's own image (file-backed,
/// clean, shared with the page cache), other files (shared libraries), and anonymous memory (the GC heap,
/// thread stacks, malloc), with the thread names.
/// </summary>
public sealed record MemoryBreakdown(long ImageBytes, long LibraryBytes, long AnonymousBytes, IReadOnlyDictionary<string, int> Threads)
{
    /// <summary>Of the anonymous memory: the executable's bss, right after its image (in a NativeAOT binary mostly the type data rehydrated at start).</summary>
    public long BssBytes { get; init; }

    /// <summary>Of the anonymous memory: malloc's main heap ([heap]).</summary>
    public long MallocHeapBytes { get; init; }

    public static MemoryBreakdown Of(int pid)
    {
        var exe = File.ResolveLinkTarget($"/proc/{pid}/exe", returnFinalTarget: true)?.FullName ?? string.Empty;
        long image = 0, libraries = 0, anonymous = 0, bss = 0, heap = 0;
        string? path = null;
        var afterImage = false;
        var previousWasImage = false;
        ulong previousEnd = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            // A mapping's header: "start-end perms offset dev inode [path]"; its fields follow, "Rss:   123 kB" among them.
            if (IsMappingHeader(line))
            {
                var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                path = parts.Length == 6 ? parts[5].Trim() : string.Empty;
                var range = parts[0].Split('-');
                var start = ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                afterImage = previousWasImage && path.Length == 0 && start == previousEnd;
                previousWasImage = path == exe;
                previousEnd = ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                var kb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
                if (path == exe)
                {
                    image += kb;
                }
                else if (path is { Length: > 0 } && path[0] == '/')
                {
                    libraries += kb;
                }
                else
                {
                    anonymous += kb; // anonymous mappings, [heap], [stack]
                    bss += afterImage ? kb : 0;
                    heap += path == "[heap]" ? kb : 0;
                }
            }
        }

        var threads = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                threads[name] = threads.GetValueOrDefault(name) + 1;
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return new MemoryBreakdown(image, libraries, anonymous, threads) { BssBytes = bss, MallocHeapBytes = heap };
    }

    private static bool IsMappingHeader(string line)
    {
        var dash = line.IndexOf('-', StringComparison.Ordinal);
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        return dash > 0 && space > dash && !line.AsSpan(0, space).ContainsAnyExcept("0123456789abcdef-");
    }
}

/// <summary>The agent's own runtime figures, read from its /metrics (RuntimeMetrics in the agent).</summary>
public sealed record GcSample(long HeapBytes, long CommittedBytes, long AllocatedBytes, long Gen0, long Gen1, long Gen2, double PauseSeconds)
{
    /// <summary>Collections of any generation.</summary>
    public long Collections => Gen0 + Gen1 + Gen2;

    public static GcSample Parse(string metrics)
    {
        double Value(string name)
        {
            foreach (var line in metrics.Split('\n'))
            {
                if (line.StartsWith(name + " ", StringComparison.Ordinal))
                {
                    return double.Parse(line[(name.Length + 1)..].Trim(), CultureInfo.InvariantCulture);
                }
            }

            return -1;
        }

        return new GcSample(
            (long)Value("dotnet_gc_last_collection_heap_size_bytes"),
            (long)Value("dotnet_gc_last_collection_memory_committed_size_bytes"),
            (long)Value("dotnet_gc_heap_total_allocated_bytes_total"),
            (long)Value("dotnet_gc_collections_total{gc_heap_generation=\"gen0\"}"),
            (long)Value("dotnet_gc_collections_total{gc_heap_generation=\"gen1\"}"),
            (long)Value("dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}"),
            Value("dotnet_gc_pause_time_seconds_total"));
    }
}

/// <summary>Running helper processes.</summary>
public static class Run
{
    /// <summary>
    /// Sets a measured child's environment: the bench's own GC settings (DOTNET_GC*, which bench/run.sh gives
    /// the bench process for its hollow nodes) are removed, so the master and the agent run as they ship,
    /// with only the settings a run asked for (<c>--master-env</c>, <c>--agent-env</c>) added.
    /// </summary>
    public static void SetChildEnvironment(ProcessStartInfo psi, IReadOnlyDictionary<string, string> extra)
    {
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("DOTNET_GC", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            psi.Environment.Remove(name);
        }

        foreach (var (name, value) in extra)
        {
            psi.Environment[name] = value;
        }
    }

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

    public static int FreePort() => EdgeKube.Testing.Ports.Free();

    /// <summary>Polls until <paramref name="condition"/> holds; throws with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, int intervalMs = 100)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await Try(condition))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("timed out waiting for " + what);
            }

            await Task.Delay(intervalMs);
        }
    }

    /// <summary>
    /// One look; a failed API request counts as "not yet" (a master under a 1,000-node load once closed one
    /// TLS handshake, which ended a 10-minute scale run), and the deadline still bounds the wait.
    /// </summary>
    private static async Task<bool> Try(Func<Task<bool>> condition)
    {
        try
        {
            return await condition();
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"bench: request failed while waiting ({e.Message}); looking again");
            return false;
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
