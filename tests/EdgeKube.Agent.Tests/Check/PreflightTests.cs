using EdgeKube.Agent.Check;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Check;

/// <summary>The checks that read files, on a board tree the test lays out (a kernel with or without the memory cgroup, with or without devices).</summary>
public sealed class PreflightTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("edgekube-preflight-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(string relative, string content = "")
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    private Preflight Preflight(TimeProvider? time = null, IReadOnlyList<string>? cni = null) =>
        new(new PreflightPaths { Root = _root, CniBinDirs = cni ?? [Path.Combine(_root, "usr/lib/cni")] }, time ?? new FakeTimeProvider(new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero)));

    [Fact]
    public void Memory_cgroup_v2_on_passes_and_off_fails_with_the_cmdline_fix()
    {
        Write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
        Assert.Equal(CheckOutcome.Ok, Preflight().MemoryCgroup().Outcome);

        // Raspberry Pi kernels boot with cgroup_disable=memory.
        Write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n");
        var result = Preflight().MemoryCgroup();
        Assert.Equal(CheckOutcome.Failed, result.Outcome);
        Assert.Equal(
            "FAIL memory cgroup: the memory controller is off (cgroup v2: not in /sys/fs/cgroup/cgroup.controllers). Fix: append \"cgroup_enable=memory cgroup_memory=1\" to the single line of /boot/firmware/cmdline.txt and reboot",
            result.ToString());
    }

    [Fact]
    public void Memory_cgroup_v1_is_read_from_proc_cgroups()
    {
        Write("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t0\t1\t0\n");
        Assert.Equal(CheckOutcome.Failed, Preflight().MemoryCgroup().Outcome);
        Write("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t4\t80\t1\n");
        Assert.Equal("ok   memory cgroup: enabled (cgroup v1)", Preflight().MemoryCgroup().ToString());
    }

    [Fact]
    public void No_cgroup_filesystem_fails()
    {
        Assert.Equal(CheckOutcome.Failed, Preflight().MemoryCgroup().Outcome);
    }

    [Fact]
    public void Cni_plugins_missing_or_partial_fail_with_the_package_to_install()
    {
        var none = Preflight().CniPluginsPresent();
        Assert.Equal(CheckOutcome.Failed, none.Outcome);
        Assert.EndsWith("Fix: sudo apt-get install -y containernetworking-plugins", none.ToString(), StringComparison.Ordinal);

        Write("usr/lib/cni/bridge");
        Write("usr/lib/cni/host-local");
        var partial = Preflight().CniPluginsPresent();
        Assert.Equal(CheckOutcome.Failed, partial.Outcome);
        Assert.Contains("loopback, portmap missing in", partial.Detail);

        Write("usr/lib/cni/loopback");
        Write("usr/lib/cni/portmap");
        Assert.Equal(CheckOutcome.Ok, Preflight().CniPluginsPresent().Outcome);
    }

    [Fact]
    public void Missing_i2c_and_gpio_devices_warn_with_the_fix_and_present_ones_are_listed()
    {
        Directory.CreateDirectory(Path.Combine(_root, "dev"));
        var i2c = Preflight().I2c();
        Assert.Equal(CheckOutcome.Warning, i2c.Outcome);
        Assert.Contains("dtparam=i2c_arm=on", i2c.Fix);
        Assert.Equal(CheckOutcome.Warning, Preflight().Gpio().Outcome);

        Write("dev/i2c-1");
        Write("dev/gpiochip0");
        Write("dev/gpiochip1");
        Assert.Equal("ok   I2C: /dev/i2c-1", Preflight().I2c().ToString());
        Assert.Equal("ok   GPIO: /dev/gpiochip0, /dev/gpiochip1", Preflight().Gpio().ToString());
    }

    [Fact]
    public void A_clock_in_1970_fails_and_an_unsynchronised_one_warns()
    {
        var epoch = Preflight(new FakeTimeProvider(DateTimeOffset.UnixEpoch)).Clock();
        Assert.Equal(CheckOutcome.Failed, epoch.Outcome);
        Assert.Contains("1970-01-01 00:00:00Z", epoch.Detail);
        Assert.Contains("timedatectl set-ntp true", epoch.Fix);

        Assert.Equal(CheckOutcome.Warning, Preflight().Clock().Outcome);
        Write("run/systemd/timesync/synchronized");
        Assert.Equal(CheckOutcome.Ok, Preflight().Clock().Outcome);
    }
}
