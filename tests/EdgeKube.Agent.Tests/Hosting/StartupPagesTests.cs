using System.Runtime.InteropServices;
using System.Security.Cryptography;
using EdgeKube.Agent.Hosting;

namespace EdgeKube.Agent.Tests.Hosting;

/// <summary>Which mappings the agent gives back after start-up: only its executable's read-only ones.</summary>
public sealed class StartupPagesTests
{
    [Fact]
    public void The_executables_private_mappings_are_chosen_and_the_writable_ones_marked()
    {
        const string exe = "/usr/local/bin/edgekube-agent";
        string[] maps =
        [
            "55d0c0000000-55d0c0040000 r--p 00000000 08:01 1234   /usr/local/bin/edgekube-agent",
            "55d0c0040000-55d0c0daa000 r-xp 00040000 08:01 1234   /usr/local/bin/edgekube-agent",
            "55d0c0daa000-55d0c1d94000 r--p 00daa000 08:01 1234   /usr/local/bin/edgekube-agent",
            // RELRO: read-only now, but relocated (written) by the loader; chosen too, the advice keeps its contents.
            "55d0c1d94000-55d0c1d96000 r--p 01d93000 08:01 1234   /usr/local/bin/edgekube-agent",
            "55d0c1d96000-55d0c1e24000 rw-p 01d95000 08:01 1234   /usr/local/bin/edgekube-agent",
            "55d0c1e24000-55d0c2cad000 rw-p 00000000 00:00 0 ",
            "7f1c2a000000-7f1c2a028000 r--p 00000000 08:01 777    /usr/lib/x86_64-linux-gnu/libc.so.6",
            "7f1c2a028000-7f1c2a1bd000 r-xp 00028000 08:01 777    /usr/lib/x86_64-linux-gnu/libc.so.6",
            "7f1c2b000000-7f1c2b001000 r--s 00000000 08:01 1234   /usr/local/bin/edgekube-agent",
            "7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0      [stack]",
            "garbage",
        ];

        var chosen = StartupPages.Mappings(maps, exe).ToList();

        Assert.Equal(
        [
            (0x55d0c0000000UL, 0x40000L, false),
            (0x55d0c0040000UL, 0xd6a000L, false),
            (0x55d0c0daa000UL, 0xfea000L, false),
            (0x55d0c1d94000UL, 0x2000L, false),
            // Data and type data: only its pages still as the file has them are released (FilePageRuns).
            (0x55d0c1d96000UL, 0x8e000L, true),
        ], chosen);
    }

    [Fact]
    public void Pages_are_released_after_start_up_and_again_once_changed_pods_have_settled()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        var policy = new PageReleasePolicy(t0);
        bool At(int seconds, long updates) => policy.Due(t0.AddSeconds(seconds), updates);

        // Start-up: 30 s after the agent started, whatever its pods did.
        Assert.False(At(10, 4));
        Assert.True(At(30, 6));
        // Nothing changed since: nothing to give back.
        Assert.False(At(200, 6));

        // Ten pods start (statuses change until 215 s): once quiet for 30 s.
        Assert.False(At(205, 20));
        Assert.False(At(215, 26));
        Assert.False(At(240, 26));
        Assert.True(At(245, 26));
        Assert.Equal(2, policy.Releases);

        // A pod in a crash loop: restarts every 40 s keep it from being quiet, then at most one release a minute.
        Assert.False(At(260, 27));
        Assert.False(At(290, 27)); // quiet for 30 s, but the last release was 45 s ago
        Assert.True(At(305, 27));
        Assert.False(At(340, 28));
        Assert.False(At(360, 28));
        Assert.True(At(370, 28)); // quiet for 30 s, 65 s after the last
        Assert.False(At(500, 28));
        Assert.Equal(4, policy.Releases);
    }

    [Fact]
    public void Each_release_is_followed_by_one_more_collection_a_minute_later_for_the_array_pools()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        var policy = new PageReleasePolicy(t0);
        bool Trim(int seconds) => policy.TrimDue(t0.AddSeconds(seconds));

        Assert.False(Trim(20)); // nothing released yet
        Assert.True(policy.Due(t0.AddSeconds(30), 5));
        Assert.False(Trim(40));
        Assert.False(Trim(94));
        Assert.True(Trim(95)); // 65 s after the release
        Assert.False(Trim(96)); // once
        Assert.False(Trim(1000));

        // A release before the follow-up came moves it: 65 s after the latest.
        Assert.False(policy.Due(t0.AddSeconds(1070), 6));
        Assert.True(policy.Due(t0.AddSeconds(1100), 6)); // follow-up due at 1165
        Assert.False(policy.Due(t0.AddSeconds(1130), 9));
        Assert.True(policy.Due(t0.AddSeconds(1160), 9)); // quiet for 30 s, 60 s after the last release
        Assert.False(Trim(1165));
        Assert.False(Trim(1224));
        Assert.True(Trim(1225));
        Assert.False(Trim(1300));
    }

    [Fact]
    public void Only_mapped_pages_still_the_files_are_released_from_a_writable_mapping()
    {
        const ulong Present = 1UL << 63;
        const ulong File = 1UL << 61;
        const ulong Anonymous = Present; // copied on write: present, not a file page
        ulong[] pagemap = [Present | File, Present | File, Anonymous, 0, Present | File, File, Present | File, Present | File];

        Assert.Equal([(0x1000UL, 0x2000L), (0x5000UL, 0x1000L), (0x7000UL, 0x2000L)], StartupPages.FilePageRuns(0x1000, 0x1000, pagemap));
        Assert.Equal([(0x10000UL, 0x8000L)], StartupPages.FilePageRuns(0x10000, 0x4000, [Present | File, Present | File]));
        Assert.Empty(StartupPages.FilePageRuns(0x1000, 0x1000, [Anonymous, 0]));
    }

    /// <summary>
    /// On this machine's kernel and disk: after the release, a file mapping keeps only the pages touched since,
    /// one page per touch. Without MADV_RANDOM each touch brought back 128 KiB (read-ahead and fault-around);
    /// without dropping the rest of the file from the page cache, 64 KiB (fault-around of the cached pages).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void After_the_release_a_touch_maps_back_its_own_page_and_not_its_neighbours(bool writable)
    {
        const int Page = 4096;
        const int Size = 8 << 20;
        // Beside the test binaries, on a real disk: tmpfs pages cannot be reclaimed.
        var dir = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "startup-pages-" + Guid.NewGuid().ToString("N")));
        var path = Path.Combine(dir.FullName, "image.bin");
        try
        {
            // Written through the page cache, which keeps the file's pages (as after an install).
            using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                file.Write(RandomNumberGenerator.GetBytes(Size));
                file.Flush(flushToDisk: true);
            }

            using var handle = File.OpenHandle(path);
            var start = Mmap(0, Size, writable ? ProtRead | ProtWrite : ProtRead, MapPrivate, handle.DangerousGetHandle().ToInt32(), 0);
            Assert.NotEqual(-1, start);
            try
            {
                // Start-up touches the first half; the second stays in the page cache, unmapped.
                long sum = 0;
                for (var offset = 0; offset < Size / 2; offset += Page)
                {
                    sum += Marshal.ReadByte(start, offset);
                }

                Assert.True(sum > 0);
                Assert.True(Resident(start, Size) >= Size / 2 / Page);

                // Statics written at start-up: the process's own pages now, which must stay as written.
                const int Written = 3;
                for (var page = 0; writable && page < Written; page++)
                {
                    Marshal.WriteInt64(start, (page * 7 * Page) + 8, 0x5EED_0000 + page);
                }

                // Writing may have unmapped more than it copied (a huge page of the file is split by unmapping it).
                var filePages = Resident(start, Size, fileOnly: true);
                Assert.True(filePages > 0);

                var advised = StartupPages.Release(path, "/proc/self/maps", "/proc/self/pagemap");

                // Read-only: the whole mapping. Writable: the pages mapped from the file, none written.
                Assert.Equal(writable ? (long)filePages * Page : Size, advised);
                for (var page = 0; writable && page < Written; page++)
                {
                    Assert.Equal(0x5EED_0000 + page, Marshal.ReadInt64(start, (page * 7 * Page) + 8));
                }

                var afterRelease = Resident(start, Size);
                Assert.True(afterRelease < Size / Page / 10, $"{afterRelease} of {Size / Page} pages still resident after the release");

                const int Stride = 256 * 1024;
                for (var offset = 0; offset < Size; offset += Stride)
                {
                    sum += Marshal.ReadByte(start, offset);
                }

                var touched = Size / Stride;
                var resident = Resident(start, Size);
                Assert.True(resident <= afterRelease + touched, $"{touched} pages touched, {resident - afterRelease} came back");
            }
            finally
            {
                Munmap(start, Size);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Pages of [start, start + length) mapped in this process (/proc/self/pagemap, bit 63), or only those still the file's (bit 61).</summary>
    private static int Resident(nint start, int length, bool fileOnly = false)
    {
        var pages = length / 4096;
        var entries = new byte[pages * 8];
        using var pagemap = new FileStream("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
        pagemap.Seek(start / 4096 * 8, SeekOrigin.Begin);
        pagemap.ReadExactly(entries);
        var resident = 0;
        for (var i = 0; i < pages; i++)
        {
            var entry = BitConverter.ToUInt64(entries, i * 8);
            resident += (int)(entry >> 63) & (fileOnly ? (int)(entry >> 61) & 1 : 1);
        }

        return resident;
    }

    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int MapPrivate = 2;

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(nint address, nuint length);
}
