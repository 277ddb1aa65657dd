using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary><c>edgekube-agent check</c> as a person runs it, against the real containerd of the fixture.</summary>
[Collection("containerd")]
public sealed class CheckCommandTests(ContainerdFixture containerd) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("edgekube-check-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A board's /sys, /dev and /run as the check sees them.</summary>
    private void Board(string controllers = "cpuset cpu io memory pids")
    {
        foreach (var (path, content) in new[]
        {
            ("sys/fs/cgroup/cgroup.controllers", controllers + "\n"),
            ("dev/gpiochip0", ""),
            ("dev/i2c-1", ""),
            ("run/systemd/timesync/synchronized", ""),
        })
        {
            var full = Path.Combine(_root, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, content);
        }
    }

    private static Task<(int Code, string Output)> CheckAsync(params string[] args) =>
        MasterProcess.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "edgekube-agent.dll"), "check", .. args]);

    [Fact]
    public async Task Check_passes_on_a_board_with_everything_and_reports_containerds_cri_version()
    {
        Board();
        var (code, output) = await CheckAsync("--containerd-socket", containerd.SocketPath, "--root", _root, "--cni-bin-dir", "/usr/lib/cni");
        Assert.True(code == 0, output);
        Assert.Matches($@"(?m)^ok   containerd: containerd \S+ speaks CRI v1 at {System.Text.RegularExpressions.Regex.Escape(containerd.SocketPath)}$", output);
        Assert.Contains("ok   memory cgroup: enabled (cgroup v2)", output);
        Assert.Contains("ok   CNI plugins: bridge, host-local, loopback, portmap in /usr/lib/cni", output);
        Assert.Contains("ok   I2C: /dev/i2c-1", output);
        Assert.Contains("ok   GPIO: /dev/gpiochip0", output);
        Assert.Matches(@"(?m)^ok   clock: 20\d\d-", output);
        Assert.Contains("all checks passed (0 warning(s))", output);
    }

    [Fact]
    public async Task Check_fails_on_a_missing_containerd_socket_with_the_fix()
    {
        Board();
        var missing = Path.Combine(_root, "containerd.sock");
        var (code, output) = await CheckAsync("--containerd-socket", missing, "--root", _root, "--cni-bin-dir", "/usr/lib/cni");
        Assert.Equal(1, code);
        Assert.Contains($"FAIL containerd: no socket at {missing}. Fix: sudo apt-get install -y containerd runc && sudo systemctl enable --now containerd", output);
        Assert.Contains("1 check(s) failed", output);
    }

    [Fact]
    public async Task Check_fails_on_a_kernel_without_the_memory_cgroup_and_says_what_to_put_in_cmdline_txt()
    {
        Board(controllers: "cpuset cpu io pids");
        var (code, output) = await CheckAsync("--containerd-socket", containerd.SocketPath, "--root", _root, "--cni-bin-dir", "/usr/lib/cni");
        Assert.Equal(1, code);
        Assert.Contains("FAIL memory cgroup:", output);
        Assert.Contains("cgroup_enable=memory cgroup_memory=1", output);
        Assert.Contains("ok   containerd:", output);
    }
}
