using System.Text.RegularExpressions;

namespace EdgeKube.Deploy.Tests;

/// <summary>
/// The units in systemd/ checked by systemd's own parser. CI has no systemd as PID 1, so
/// <c>systemd-analyze verify --root=DIR --man=no</c> runs on a root the test builds: the units where the
/// packages install them, stand-in executables for ExecStart=, and the host's targets (multi-user.target,
/// network-online.target, sysinit.target, ...) that the units' dependencies need.
/// </summary>
public sealed partial class SystemdUnitTests
{
    private static readonly string[] Units = ["edgekube-agent.service", "edgekube-master.service"];

    /// <summary>
    /// systemd 252 (Debian 12, Raspberry Pi OS Bookworm) does not know the exponential restart backoff
    /// of 254; it warns and keeps RestartSec=. Nothing else may be reported.
    /// </summary>
    [GeneratedRegex(@"^\S+\.service:\d+: Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\], ignoring\.$")]
    private static partial Regex KnownOldSystemdWarning();

    internal static async Task<(int Code, string Output)> VerifyAsync(string root, params string[] units) =>
        await Repo.RunAsync("systemd-analyze", ["verify", "--root=" + root, "--man=no", .. units]);

    internal static void BuildRoot(string root, string unitsFrom, string dropInsFrom)
    {
        var system = Path.Combine(root, "lib/systemd/system");
        Directory.CreateDirectory(system);
        Directory.CreateDirectory(Path.Combine(root, "usr/bin"));
        foreach (var target in Directory.GetFiles("/lib/systemd/system", "*.target"))
        {
            File.Copy(target, Path.Combine(system, Path.GetFileName(target)), overwrite: true);
        }

        foreach (var exe in new[] { "edgekube-agent", "edgekube-master", "containerd" })
        {
            var path = Path.Combine(root, "usr/bin", exe);
            if (!File.Exists(path))
            {
                File.Copy("/bin/true", path);
            }
        }

        File.Copy("/lib/systemd/system/containerd.service", Path.Combine(system, "containerd.service"), overwrite: true);
        // Units already in place (a package unpacked into the root) stay as they are.
        static void CopyInto(string file, string dir)
        {
            var target = Path.Combine(dir, Path.GetFileName(file));
            if (Path.GetFullPath(file) != Path.GetFullPath(target))
            {
                File.Copy(file, target, overwrite: true);
            }
        }

        foreach (var unit in Directory.GetFiles(unitsFrom, "*.service").Where(u => Path.GetFileName(u) != "containerd.service"))
        {
            CopyInto(unit, system);
        }

        var dropIns = Path.Combine(system, "containerd.service.d");
        Directory.CreateDirectory(dropIns);
        foreach (var conf in Directory.GetFiles(dropInsFrom, "*.conf"))
        {
            CopyInto(conf, dropIns);
        }
    }

    internal static void AssertClean(int code, string output)
    {
        Assert.True(code == 0, "systemd-analyze verify failed:\n" + output);
        var unexpected = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => Regex.Replace(l, @"^/\S*/", ""))
            .Where(l => !KnownOldSystemdWarning().IsMatch(l))
            .ToList();
        Assert.True(unexpected.Count == 0, "systemd-analyze verify reported:\n" + string.Join('\n', unexpected));
    }

    [Fact]
    public async Task Systemd_analyze_verify_passes_on_every_unit_and_the_containerd_drop_in()
    {
        using var root = new TempDir();
        BuildRoot(root.Path, Repo.PathOf("systemd"), Repo.PathOf("systemd", "containerd.service.d"));
        var (code, output) = await VerifyAsync(root.Path, [.. Units, "containerd.service"]);
        AssertClean(code, output);
    }

    [Fact]
    public async Task Verify_as_run_here_catches_a_broken_unit()
    {
        // The check above can fail: the same verify on a unit with a bad value and a typo reports both.
        using var root = new TempDir();
        using var units = new TempDir();
        var broken = File.ReadAllText(Repo.PathOf("systemd", "edgekube-agent.service"))
            .Replace("WatchdogSec=90", "WatchdogSec=ninety", StringComparison.Ordinal)
            .Replace("Restart=always", "Restrat=always", StringComparison.Ordinal);
        File.WriteAllText(units["edgekube-agent.service"], broken);
        BuildRoot(root.Path, units.Path, Repo.PathOf("systemd", "containerd.service.d"));
        var (code, output) = await VerifyAsync(root.Path, "edgekube-agent.service");
        Assert.Contains("Failed to parse sec value, ignoring: ninety", output);
        Assert.Contains("Unknown key 'Restrat'", output);
        Assert.Throws<Xunit.Sdk.TrueException>(() => AssertClean(code, output));
    }

    [Theory]
    [InlineData("edgekube-agent.service")]
    [InlineData("edgekube-master.service")]
    public void Unit_is_a_notify_service_with_a_watchdog_that_always_restarts(string unit)
    {
        var text = File.ReadAllText(Repo.PathOf("systemd", unit));
        Assert.Matches(@"(?m)^Type=notify$", text);
        Assert.Matches(@"(?m)^WatchdogSec=\d+$", text);
        Assert.Matches(@"(?m)^Restart=always$", text);
        Assert.Matches(@"(?m)^RestartSec=\d+$", text);
        Assert.Matches(@"(?m)^StartLimitIntervalSec=0$", text);
        Assert.Matches(@"(?m)^StandardOutput=journal$", text);
        Assert.Matches(@"(?m)^NoNewPrivileges=yes$", text);
        Assert.Matches(@"(?m)^After=.*network-online\.target", text);
        Assert.Matches(@"(?m)^WantedBy=multi-user\.target$", text);
    }

    [Fact]
    public void Agent_unit_follows_containerd_and_keeps_the_host_paths_it_needs()
    {
        var text = File.ReadAllText(Repo.PathOf("systemd", "edgekube-agent.service"));
        Assert.Matches(@"(?m)^Wants=.*containerd\.service", text);
        Assert.Matches(@"(?m)^After=.*containerd\.service", text);
        Assert.Matches(@"(?m)^ExecStart=/usr/bin/edgekube-agent --config /etc/edgekube/agent.yaml", text);
        Assert.Matches(@"(?m)^StateDirectory=edgekube$", text);
        // /run/containerd, /dev/gpiochip*, /dev/i2c-* and /var/lib/edgekube stay reachable: no private
        // /dev, no device allow-list (ProtectClock= would add one), no read-only /var or /run.
        Assert.DoesNotMatch(@"(?m)^(PrivateDevices|ProtectClock|DevicePolicy|DeviceAllow|PrivateNetwork)=", text);
        Assert.DoesNotMatch(@"(?m)^ProtectSystem=strict$", text);
        Assert.DoesNotMatch(@"(?m)^(ReadOnlyPaths|InaccessiblePaths)=.*(/run|/dev|/var)", text);
        Assert.Matches(@"(?m)^ProtectSystem=full$", text);
    }
}
