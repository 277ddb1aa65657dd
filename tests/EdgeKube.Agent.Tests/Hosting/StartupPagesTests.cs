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
}
