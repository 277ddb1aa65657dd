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
/// older kernel the call fails and nothing happens.
/// </remarks>
public static class StartupPages
{
    private const int MadvRandom = 1;
    private const int MadvPageout = 21;
    private const int PosixFadvDontNeed = 4;

    /// <summary>Advises the kernel to reclaim the executable's read-only mappings; returns the bytes advised (0 when unsupported).</summary>
    public static long Release() =>
        OperatingSystem.IsLinux() && Environment.ProcessPath is { } exe ? Release(exe, "/proc/self/maps") : 0;

    /// <summary>
    /// Reclaims the read-only private mappings of <paramref name="path"/> listed in <paramref name="mapsPath"/>, and
    /// has later faults in them read no more than the page touched. Internal for tests.
    /// </summary>
    internal static long Release(string path, string mapsPath)
    {
        long advised = 0;
        try
        {
            foreach (var (start, length) in ReadOnlyMappings(File.ReadLines(mapsPath), path))
            {
                if (Madvise((nint)start, (nuint)length, MadvPageout) == 0)
                {
                    advised += length;
                    Madvise((nint)start, (nuint)length, MadvRandom);
                }
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

    /// <summary>The read-only (r--p, r-xp) mappings of <paramref name="path"/> in a /proc/PID/maps listing. Internal for tests.</summary>
    internal static IEnumerable<(ulong Start, long Length)> ReadOnlyMappings(IEnumerable<string> maps, string path)
    {
        foreach (var line in maps)
        {
            // "start-end perms offset dev inode path"
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || fields[5].Trim() != path || fields[1].Length < 4 || fields[1][1] != '-' || fields[1][3] != 'p')
            {
                continue;
            }

            var range = fields[0].Split('-');
            if (range.Length == 2
                && ulong.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
                && ulong.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end)
                && end > start)
            {
                yield return (start, (long)(end - start));
            }
        }
    }

    // Bound at link time in the NativeAOT binary (DirectPInvoke in EdgeKube.Agent.csproj): no library is looked up at run time.
    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint address, nuint length, int advice);

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int PosixFadvise(int fd, long offset, long length, int advice);

}

/// <summary>Releases the start-up pages (<see cref="StartupPages"/>) once, <see cref="Delay"/> after the agent has started.</summary>
internal sealed partial class StartupPagesService(Agent agent, TimeProvider time, ILogger<StartupPagesService> logger) : BackgroundService
{
    /// <summary>Start-up work (adopting pods, their first sync and status, the first node status) is over well within this.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await agent.Started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            await Task.Delay(Delay, time, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            LogReleased(StartupPages.Release() / 1048576.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogNotReleased(e.Message);
        }
    }

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Start-up over: advised the kernel to reclaim {MiB:0.0} MiB of the executable's read-only pages")]
    private partial void LogReleased(double miB);

    [LoggerMessage(EventId = 8, Level = LogLevel.Debug, Message = "Start-up pages not released: {Error}")]
    private partial void LogNotReleased(string error);
}
