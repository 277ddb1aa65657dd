using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Hosting;

/// <summary>
/// Gives back the pages of the agent's own executable that only start-up touched. Starting (command line, host,
/// configuration, the first sync of every pod) runs through about 22 MiB of the NativeAOT binary's code and
/// read-only data, which then stay resident although the idle agent uses a fraction of it (measured:
/// docs/benchmarks.md, footprint). Once the agent has started, it asks the kernel to reclaim its executable's
/// read-only mappings (<c>madvise(MADV_PAGEOUT)</c>, Linux 5.4+), marks them <c>MADV_RANDOM</c>, and drops the
/// rest of the file from the page cache (<c>posix_fadvise(POSIX_FADV_DONTNEED)</c>).
/// </summary>
/// <remarks>
/// The other two matter as much as the first. A page faulted back from the file otherwise brings its
/// neighbours: the kernel reads ahead (128 KiB) and maps every cached page around the fault (fault-around,
/// 64 KiB). Within 30 s nearly the whole image was mapped again (10 of 11 MiB, measured through
/// /proc/PID/pagemap). With no read-ahead and no cached neighbours, only the pages touched come back; the
/// methods the running agent uses sit together at the start of the code (hot-methods.txt). The cost is that
/// code first run later (a pod's first start after boot) is read from the file a page at a time. The advice
/// never changes the contents (a page that cannot be reclaimed stays), so it is safe on any mapping; on an
/// older kernel the call fails and nothing happens. One limit, measured on Linux 6.18: a fault in an
/// executable mapping still maps 64 KiB (the kernel reads ahead for code whatever MADV_RANDOM says), against
/// one page in a read-only data mapping; a method missing from hot-methods.txt costs 64 KiB.
/// </remarks>
public static class StartupPages
{
    private const int MadvRandom = 1;
    private const int MadvPageout = 21;
    private const int PosixFadvDontNeed = 4;
    // 4 KiB on most boards, 16 KiB on a Raspberry Pi 5's own kernel: pagemap has one entry per page.
    private static readonly ulong PageSize = (ulong)Environment.SystemPageSize;

    /// <summary>Advises the kernel to reclaim the executable's file pages; returns the bytes advised (0 when unsupported).</summary>
    public static long Release() =>
        OperatingSystem.IsLinux() && Environment.ProcessPath is { } exe ? Release(exe, "/proc/self/maps", "/proc/self/pagemap") : 0;

    /// <summary>
    /// Reclaims the private mappings of <paramref name="path"/> listed in <paramref name="mapsPath"/> (in a writable
    /// one, only the pages still as the file has them, found in <paramref name="pagemapPath"/>), and has later faults
    /// in them read no more than the page touched. Internal for tests.
    /// </summary>
    internal static long Release(string path, string mapsPath, string pagemapPath)
    {
        long advised = 0;
        try
        {
            foreach (var (start, length, writable) in Mappings(File.ReadLines(mapsPath), path))
            {
                // A written page of a writable mapping is the process's own (anonymous) memory now: paged out, it
                // would go to swap and come back at its next use. Only the pages still shared with the file go.
                var runs = writable ? FilePageRuns(start, PageSize, ReadPagemap(pagemapPath, start, length)) : [(start, length)];
                foreach (var (runStart, runLength) in runs)
                {
                    if (Madvise((nint)runStart, (nuint)runLength, MadvPageout) == 0)
                    {
                        advised += runLength;
                    }
                }

                Madvise((nint)start, (nuint)length, MadvRandom);
            }

            if (advised > 0)
            {
                // The file's pages that the page cache still holds without this mapping (read ahead at start, or
                // left there by the install that wrote the file) would be mapped by fault-around beside every
                // page touched. Dropping them (clean pages only) leaves the cache to what is touched from now on.
                using var file = File.OpenHandle(path);
                PosixFadvise((int)file.DangerousGetHandle(), 0, 0, PosixFadvDontNeed);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not bound into this build (EdgeKube.Agent.csproj binds it directly into the NativeAOT binary).
        }

        return advised;
    }

    /// <summary>
    /// The private mappings of <paramref name="path"/> in a /proc/PID/maps listing: read-only (r--p, r-xp) and
    /// writable (rw-p, where a non-PIE binary keeps its type data). Internal for tests.
    /// </summary>
    internal static IEnumerable<(ulong Start, long Length, bool Writable)> Mappings(IEnumerable<string> maps, string path)
    {
        foreach (var line in maps)
        {
            // "start-end perms offset dev inode path"
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || fields[5].Trim() != path || fields[1].Length < 4 || fields[1][0] != 'r' || fields[1][3] != 'p')
            {
                continue;
            }

            var range = fields[0].Split('-');
            if (range.Length == 2
                && ulong.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
                && ulong.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end)
                && end > start)
            {
                yield return (start, (long)(end - start), fields[1][1] == 'w');
            }
        }
    }

    /// <summary>
    /// Runs of pages, from /proc/PID/pagemap entries (one per page of <paramref name="pageSize"/> from <paramref name="start"/>), that are mapped
    /// and still the file's (bit 63 present, bit 61 file page); a copied-on-write page is anonymous. Internal for tests.
    /// </summary>
    internal static List<(ulong Start, long Length)> FilePageRuns(ulong start, ulong pageSize, ReadOnlySpan<ulong> entries)
    {
        const ulong Present = 1UL << 63;
        const ulong FilePage = 1UL << 61;
        var runs = new List<(ulong, long)>();
        var runFrom = -1;
        for (var i = 0; i <= entries.Length; i++)
        {
            var file = i < entries.Length && (entries[i] & (Present | FilePage)) == (Present | FilePage);
            if (file && runFrom < 0)
            {
                runFrom = i;
            }
            else if (!file && runFrom >= 0)
            {
                runs.Add((start + ((ulong)runFrom * pageSize), (long)((ulong)(i - runFrom) * pageSize)));
                runFrom = -1;
            }
        }

        return runs;
    }

    private static ulong[] ReadPagemap(string pagemapPath, ulong start, long length)
    {
        var entries = new ulong[(ulong)length / PageSize];
        using var pagemap = File.OpenHandle(pagemapPath);
        var bytes = MemoryMarshal.AsBytes(entries.AsSpan());
        var offset = (long)(start / PageSize * 8);
        // The kernel hands out pagemap in pieces.
        for (var read = 0; read < bytes.Length;)
        {
            var n = RandomAccess.Read(pagemap, bytes[read..], offset + read);
            if (n <= 0)
            {
                break;
            }

            read += n;
        }

        return entries;
    }

    // Bound at link time in the NativeAOT binary (DirectPInvoke in EdgeKube.Agent.csproj): no library is looked up at run time.
    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint address, nuint length, int advice);

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int PosixFadvise(int fd, long offset, long length, int advice);

}

/// <summary>
/// When the executable's pages are given back (<see cref="StartupPages"/>): <see cref="Delay"/> after the agent has
/// started, and again once pods that changed since (started, stopped, restarted) have settled, their statuses
/// unchanged for <see cref="Delay"/>, at most once per <see cref="MinimumInterval"/>. A pod's first start runs code
/// and touches type data that the running agent does not use again (measured: docs/benchmarks.md, footprint).
/// </summary>
internal sealed class PageReleasePolicy
{
    /// <summary>Start-up work (adopting pods, their first sync and status, the first node status) is over well within this.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(30);

    /// <summary>Least time between two releases: a pod in a crash loop does not have the pages released at every restart.</summary>
    public static readonly TimeSpan MinimumInterval = TimeSpan.FromMinutes(1);

    /// <summary>
    /// When the full collection of a release is followed by one more. .NET's shared array pools (the buffers of
    /// gRPC, HTTP/2, JSON and string formatting, cached per thread and per core) drop a buffer only at a full
    /// collection that finds it unused since an earlier full collection at least 60 s before; the buffers the
    /// pods' starts used (about 0.6 MiB with 10 pods, dotnet-gcdump) are stamped at the release and dropped at this one.
    /// </summary>
    public static readonly TimeSpan PoolTrimAfter = TimeSpan.FromSeconds(65);

    private readonly DateTimeOffset _started;
    private DateTimeOffset? _releasedAt;
    private long _releasedUpdates;
    private long _seenUpdates;
    private DateTimeOffset _quietSince;
    private DateTimeOffset? _trimAt;

    /// <summary>For an agent that started at <paramref name="started"/>.</summary>
    public PageReleasePolicy(DateTimeOffset started) => _started = _quietSince = started;

    /// <summary>Releases so far.</summary>
    public int Releases { get; private set; }

    /// <summary>Whether to release now, given the status manager's count of status changes; a true answer counts as done.</summary>
    public bool Due(DateTimeOffset now, long updates)
    {
        if (updates != _seenUpdates)
        {
            _seenUpdates = updates;
            _quietSince = now;
        }

        var due = _releasedAt is not { } last
            ? now - _started >= Delay
            : updates != _releasedUpdates && now - _quietSince >= Delay && now - last >= MinimumInterval;
        if (due)
        {
            _trimAt = now + PoolTrimAfter;
            _releasedAt = now;
            _releasedUpdates = updates;
            Releases++;
        }

        return due;
    }

    /// <summary>Whether the follow-up collection of the last release (<see cref="PoolTrimAfter"/>) is due; a true answer counts as done.</summary>
    public bool TrimDue(DateTimeOffset now)
    {
        if (_trimAt is { } at && now >= at)
        {
            _trimAt = null;
            return true;
        }

        return false;
    }
}

/// <summary>Releases the executable's pages (<see cref="StartupPages"/>) as <see cref="PageReleasePolicy"/> says.</summary>
internal sealed partial class StartupPagesService(Agent agent, TimeProvider time, ILogger<StartupPagesService> logger) : BackgroundService
{
    /// <summary>How often the service looks whether pod statuses have changed.</summary>
    public static readonly TimeSpan Check = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await agent.Started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            var policy = new PageReleasePolicy(time.GetUtcNow());
            while (true)
            {
                var now = time.GetUtcNow();
                if (policy.Due(now, agent.Statuses?.Updates ?? 0))
                {
                    Release(initial: policy.Releases == 1);
                }
                else if (policy.TrimDue(now))
                {
                    Collect();
                }

                await Task.Delay(Check, time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // What start-up or the pods' starts allocated and dropped sits in generations 1 and 2 until a full
    // collection, which a heap of a few MiB growing by ~70 KB/s of mostly short-lived objects reaches only
    // after minutes; meanwhile the regions holding it stay committed and resident. An aggressive collection
    // compacts and decommits the free regions (a few milliseconds for this heap, at most twice a minute).
    private static void Collect() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private void Release(bool initial)
    {
        Collect();
        try
        {
            var miB = StartupPages.Release() / 1048576.0;
            if (initial)
            {
                LogReleased(miB);
            }
            else
            {
                LogReleasedAgain(miB);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogNotReleased(e.Message);
        }
    }

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Start-up over: advised the kernel to reclaim {MiB:0.0} MiB of the executable's pages")]
    private partial void LogReleased(double miB);

    [LoggerMessage(EventId = 8, Level = LogLevel.Debug, Message = "Start-up pages not released: {Error}")]
    private partial void LogNotReleased(string error);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "Pods settled: advised the kernel to reclaim {MiB:0.0} MiB of the executable's pages again")]
    private partial void LogReleasedAgain(double miB);
}
