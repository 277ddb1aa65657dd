using System.Runtime.InteropServices;
using System.Security.Cryptography;
using EdgeKube.Agent.Hosting;

namespace EdgeKube.Agent.Tests.Hosting;

/// <summary>Which mappings the agent gives back after start-up: only its executable's read-only ones.</summary>
public sealed class StartupPagesTests
{
    [Fact]
    public void Only_the_executables_read_only_private_mappings_are_chosen()
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

        var chosen = StartupPages.ReadOnlyMappings(maps, exe).ToList();

        Assert.Equal(
        [
            (0x55d0c0000000UL, 0x40000L),
            (0x55d0c0040000UL, 0xd6a000L),
            (0x55d0c0daa000UL, 0xfea000L),
            (0x55d0c1d94000UL, 0x2000L),
        ], chosen);
    }

    /// <summary>
    /// On this machine's kernel and disk: after the release, a file mapping keeps only the pages touched since,
    /// one page per touch. Without MADV_RANDOM each touch brought back 128 KiB (read-ahead and fault-around);
    /// without dropping the rest of the file from the page cache, 64 KiB (fault-around of the cached pages).
    /// </summary>
    [Fact]
    public void After_the_release_a_touch_maps_back_its_own_page_and_not_its_neighbours()
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
            var start = Mmap(0, Size, ProtRead, MapPrivate, handle.DangerousGetHandle().ToInt32(), 0);
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

                var advised = StartupPages.Release(path, "/proc/self/maps");

                Assert.Equal(Size, advised);
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

    /// <summary>Pages of [start, start + length) mapped in this process (/proc/self/pagemap, bit 63).</summary>
    private static int Resident(nint start, int length)
    {
        var pages = length / 4096;
        var entries = new byte[pages * 8];
        using var pagemap = new FileStream("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
        pagemap.Seek(start / 4096 * 8, SeekOrigin.Begin);
        pagemap.ReadExactly(entries);
        var resident = 0;
        for (var i = 0; i < pages; i++)
        {
            resident += (int)(BitConverter.ToUInt64(entries, i * 8) >> 63);
        }

        return resident;
    }

    private const int ProtRead = 1;
    private const int MapPrivate = 2;

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(nint address, nuint length);
}
