using System.Globalization;
using EdgeKube.Agent.Cri;

namespace EdgeKube.Agent.Check;

/// <summary>How one preflight check came out.</summary>
public enum CheckOutcome
{
    Ok,

    /// <summary>Works, but something a board usually wants is missing (does not fail the check).</summary>
    Warning,

    /// <summary>The agent cannot run pods properly until this is fixed.</summary>
    Failed,
}

/// <summary>One line of <c>edgekube-agent check</c>: what was checked, what was found, and how to fix it.</summary>
public sealed record CheckResult(string Name, CheckOutcome Outcome, string Detail, string? Fix = null)
{
    public override string ToString()
    {
        var tag = Outcome switch
        {
            CheckOutcome.Ok => "ok  ",
            CheckOutcome.Warning => "WARN",
            _ => "FAIL",
        };
        return Fix is null ? $"{tag} {Name}: {Detail}" : $"{tag} {Name}: {Detail}. Fix: {Fix}";
    }
}

/// <summary>
/// Where the checks look. Defaults are the board's; tests (and a check of a mounted image) point
/// <see cref="Root"/> somewhere else to simulate a kernel without the memory cgroup or a board without I2C.
/// </summary>
public sealed record PreflightPaths
{
    /// <summary>Prefix for /sys, /proc, /dev and /run/systemd (the kernel's and the devices' view).</summary>
    public string Root { get; init; } = "/";

    public string ContainerdSocket { get; init; } = Hosting.AgentOptions.DefaultContainerdSocket;

    /// <summary>Where CNI plugins may be: Debian's package, then the upstream tarball's place.</summary>
    public IReadOnlyList<string> CniBinDirs { get; init; } = ["/usr/lib/cni", "/opt/cni/bin"];

    public TimeSpan RuntimeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public string Under(string absolute) => Path.Combine(Root, absolute.TrimStart('/'));
}

/// <summary>
/// <c>edgekube-agent check</c>: what a person runs on a board before (or instead of) reading the
/// journal. Memory cgroup, containerd speaking CRI v1, CNI plugins, I2C and GPIO devices, the clock.
/// </summary>
public sealed class Preflight(PreflightPaths paths, TimeProvider time)
{
    /// <summary>The CNI plugins the agent's bridge network uses.</summary>
    public static readonly string[] CniPlugins = ["bridge", "host-local", "loopback", "portmap"];

    /// <summary>A clock before this is one that never synchronised (Raspberry Pis have no RTC: 1970, or the last fake-hwclock save).</summary>
    public static readonly DateTimeOffset SaneClockFloor = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private const string CmdlineFix = "append \"cgroup_enable=memory cgroup_memory=1\" to the single line of /boot/firmware/cmdline.txt and reboot";

    public async Task<IReadOnlyList<CheckResult>> RunAsync(CancellationToken cancellationToken) =>
    [
        MemoryCgroup(),
        await ContainerdAsync(cancellationToken).ConfigureAwait(false),
        CniPluginsPresent(),
        I2c(),
        Gpio(),
        Clock(),
    ];

    public CheckResult MemoryCgroup()
    {
        const string name = "memory cgroup";
        var controllers = paths.Under("/sys/fs/cgroup/cgroup.controllers");
        if (File.Exists(controllers))
        {
            var list = File.ReadAllText(controllers).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return list.Contains("memory")
                ? new(name, CheckOutcome.Ok, "enabled (cgroup v2)")
                : new(name, CheckOutcome.Failed, "the memory controller is off (cgroup v2: not in /sys/fs/cgroup/cgroup.controllers)", CmdlineFix);
        }

        // cgroup v1: /proc/cgroups lists "memory <hierarchy> <num_cgroups> <enabled>".
        var cgroups = paths.Under("/proc/cgroups");
        if (File.Exists(cgroups))
        {
            var memory = File.ReadLines(cgroups).Select(l => l.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries))
                .FirstOrDefault(f => f.Length >= 4 && f[0] == "memory");
            return memory is not null && memory[3] == "1"
                ? new(name, CheckOutcome.Ok, "enabled (cgroup v1)")
                : new(name, CheckOutcome.Failed, "the memory controller is off (cgroup v1: /proc/cgroups)", CmdlineFix);
        }

        return new(name, CheckOutcome.Failed, "no cgroup filesystem at /sys/fs/cgroup", "boot a kernel with cgroups (Raspberry Pi OS Bookworm 64-bit) and " + CmdlineFix);
    }

    public async Task<CheckResult> ContainerdAsync(CancellationToken cancellationToken)
    {
        const string name = "containerd";
        if (!File.Exists(paths.ContainerdSocket))
        {
            return new(name, CheckOutcome.Failed, $"no socket at {paths.ContainerdSocket}",
                "sudo apt-get install -y containerd runc && sudo systemctl enable --now containerd (or point --containerd-socket at its socket)");
        }

        using var client = new CriRuntimeClient(paths.ContainerdSocket, paths.RuntimeTimeout, paths.RuntimeTimeout);
        try
        {
            var version = await client.HandshakeAsync(cancellationToken).ConfigureAwait(false);
            return new(name, CheckOutcome.Ok, $"{version.RuntimeName} {version.RuntimeVersion} speaks CRI {version.RuntimeApiVersion} at {paths.ContainerdSocket}");
        }
        catch (CriHandshakeException e) when (!e.Retriable)
        {
            return new(name, CheckOutcome.Failed, e.Message,
                "enable containerd's CRI plugin: remove \"cri\" from disabled_plugins in /etc/containerd/config.toml (firmware-config/containerd/config.toml), then sudo systemctl restart containerd");
        }
        catch (CriHandshakeException e)
        {
            return new(name, CheckOutcome.Failed, e.Message, "sudo systemctl restart containerd; journalctl -u containerd shows why it does not answer");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException or Grpc.Core.RpcException or HttpRequestException)
        {
            return new(name, CheckOutcome.Failed, $"cannot talk to {paths.ContainerdSocket}: {e.Message}", "run the check (and the agent) as root: containerd's socket is root-only");
        }
    }

    public CheckResult CniPluginsPresent()
    {
        const string name = "CNI plugins";
        foreach (var dir in paths.CniBinDirs)
        {
            var missing = CniPlugins.Where(p => !File.Exists(Path.Combine(dir, p))).ToList();
            if (missing.Count == 0)
            {
                return new(name, CheckOutcome.Ok, $"{string.Join(", ", CniPlugins)} in {dir}");
            }
        }

        var found = paths.CniBinDirs.FirstOrDefault(d => CniPlugins.Any(p => File.Exists(Path.Combine(d, p))));
        var detail = found is null
            ? $"none of {string.Join(", ", CniPlugins)} in {string.Join(" or ", paths.CniBinDirs)}"
            : $"{string.Join(", ", CniPlugins.Where(p => !File.Exists(Path.Combine(found, p))))} missing in {found}";
        return new(name, CheckOutcome.Failed, detail, "sudo apt-get install -y containernetworking-plugins");
    }

    public CheckResult I2c()
    {
        var buses = Devices("i2c-");
        return buses.Count > 0
            ? new("I2C", CheckOutcome.Ok, string.Join(", ", buses))
            : new("I2C", CheckOutcome.Warning, "no /dev/i2c-* (I2C sensors cannot be read)",
                "add dtparam=i2c_arm=on to /boot/firmware/config.txt, echo i2c-dev | sudo tee /etc/modules-load.d/i2c-dev.conf, reboot");
    }

    public CheckResult Gpio()
    {
        var chips = Devices("gpiochip");
        return chips.Count > 0
            ? new("GPIO", CheckOutcome.Ok, string.Join(", ", chips))
            : new("GPIO", CheckOutcome.Warning, "no /dev/gpiochip* (GPIO, LEDs and buttons unavailable)",
                "use a Raspberry Pi OS kernel (GPIO character devices); on other boards load the SoC's GPIO driver");
    }

    public CheckResult Clock()
    {
        var now = time.GetUtcNow();
        var stamp = now.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        if (now < SaneClockFloor)
        {
            return new("clock", CheckOutcome.Failed, $"the clock says {stamp}, before {SaneClockFloor:yyyy-MM-dd} (TLS and MQTT credentials will not validate)",
                "sudo timedatectl set-ntp true and let the board reach an NTP server (a Raspberry Pi has no battery-backed clock)");
        }

        // systemd-timesyncd touches this file once it has synchronised since boot.
        return File.Exists(paths.Under("/run/systemd/timesync/synchronized"))
            ? new("clock", CheckOutcome.Ok, stamp + ", synchronised (systemd-timesyncd)")
            : new("clock", CheckOutcome.Warning, stamp + ", not (yet) synchronised by systemd-timesyncd", "sudo timedatectl set-ntp true");
    }

    private List<string> Devices(string prefix)
    {
        var dev = paths.Under("/dev");
        if (!Directory.Exists(dev))
        {
            return [];
        }

        return [.. Directory.EnumerateFileSystemEntries(dev, prefix + "*").Select(p => "/dev/" + Path.GetFileName(p)).Order(StringComparer.Ordinal)];
    }
}
