using EdgeKube.Agent.Node;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Node;

public sealed class NodeHealthTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly string _root = Directory.CreateTempSubdirectory("edgekube-host-").FullName;

    private static readonly HealthReadings Calm = new()
    {
        MemoryTotal = 4L << 30, MemoryAvailable = 2L << 30, DiskTotal = 100L << 30, DiskAvailable = 50L << 30, PidMax = 32768, PidUsed = 300,
    };

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private NodeHealth Health(ThermalSettings? thermal = null) => new(EvictionThresholds.Default, thermal ?? new ThermalSettings(), TimeSpan.FromMinutes(5), _time);

    private static string Status(IReadOnlyList<k8s.Models.V1NodeCondition> conditions, string type) => conditions.Single(c => c.Type == type).Status;

    [Fact]
    public void Pressures_follow_kubelets_default_thresholds_and_stay_for_the_transition_period()
    {
        var health = Health();
        var calm = health.Evaluate(Calm);
        Assert.Equal(["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"], calm.Select(c => c.Type));
        Assert.All(calm.Where(c => c.Type != "Ready"), c => Assert.Equal("False", c.Status));
        Assert.Equal("KubeletHasSufficientMemory", calm[0].Reason);

        // memory.available < 100Mi, nodefs.available < 10%, pid.available < 10%
        var pressed = health.Evaluate(Calm with { MemoryAvailable = 99L << 20, DiskAvailable = 9L << 30, PidUsed = 30000 });
        Assert.Equal("True", Status(pressed, "MemoryPressure"));
        Assert.Equal("KubeletHasInsufficientMemory", pressed[0].Reason);
        Assert.Equal("True", Status(pressed, "DiskPressure"));
        Assert.Equal("KubeletHasDiskPressure", pressed[1].Reason);
        Assert.Equal("True", Status(pressed, "PIDPressure"));
        Assert.Equal("KubeletHasInsufficientPID", pressed[2].Reason);

        // Just above the thresholds: still under pressure until the transition period has passed.
        _time.Advance(TimeSpan.FromMinutes(4));
        var recovering = health.Evaluate(Calm with { MemoryAvailable = 101L << 20 });
        Assert.Equal("True", Status(recovering, "MemoryPressure"));
        _time.Advance(TimeSpan.FromMinutes(1));
        var recovered = health.Evaluate(Calm with { MemoryAvailable = 101L << 20 });
        Assert.Equal("False", Status(recovered, "MemoryPressure"));
        Assert.Equal(_time.GetUtcNow().UtcDateTime, recovered[0].LastTransitionTime);
    }

    [Fact]
    public void Ready_is_false_with_the_reason_when_the_runtime_is_unreachable()
    {
        var conditions = Health().Evaluate(Calm with { RuntimeReady = false, RuntimeError = "connection refused (/run/containerd/containerd.sock)" });
        var ready = conditions.Single(c => c.Type == "Ready");
        Assert.Equal("False", ready.Status);
        Assert.Equal("KubeletNotReady", ready.Reason);
        Assert.Contains("container runtime is down: connection refused", ready.Message);
    }

    [Fact]
    public void Thermal_throttling_has_hysteresis_and_firmware_flags_give_under_voltage()
    {
        var health = Health(new ThermalSettings(ThrottleCelsius: 70, ClearCelsius: 65));
        Assert.DoesNotContain(health.Evaluate(Calm), c => c.Type is NodeHealth.ThermalThrottling or NodeHealth.UnderVoltage);

        Assert.Equal("False", Status(health.Evaluate(Calm with { CpuCelsius = 69.9 }), NodeHealth.ThermalThrottling));
        var hot = health.Evaluate(Calm with { CpuCelsius = 70.5 }).Single(c => c.Type == NodeHealth.ThermalThrottling);
        Assert.Equal(("True", "CPUTemperatureHigh"), (hot.Status, hot.Reason));
        Assert.Contains("70.5°C", hot.Message);
        // Between the thresholds it stays; a drifting reading changes nothing (no republish).
        var still = health.Evaluate(Calm with { CpuCelsius = 66.2 }).Single(c => c.Type == NodeHealth.ThermalThrottling);
        Assert.Equal("True", still.Status);
        Assert.Equal(hot.Message, still.Message);
        Assert.Equal("False", Status(health.Evaluate(Calm with { CpuCelsius = 64.9 }), NodeHealth.ThermalThrottling));

        // 0x50005: under-voltage now and since boot, throttled now.
        var power = health.Evaluate(Calm with { CpuCelsius = 50, Throttled = 0x50005 });
        var under = power.Single(c => c.Type == NodeHealth.UnderVoltage);
        Assert.Equal(("True", "UnderVoltageDetected"), (under.Status, under.Reason));
        Assert.Contains("under-voltage, throttled (0x50005)", under.Message);
        Assert.Equal("False", Status(power, NodeHealth.ThermalThrottling)); // throttled because of the supply, not the heat

        var soft = health.Evaluate(Calm with { CpuCelsius = 50, Throttled = 0x80008 });
        Assert.Equal(("True", "FirmwareThrottling"), (soft.Single(c => c.Type == NodeHealth.ThermalThrottling).Status, soft.Single(c => c.Type == NodeHealth.ThermalThrottling).Reason));
        var ok = health.Evaluate(Calm with { CpuCelsius = 50, Throttled = 0x50000 }).Single(c => c.Type == NodeHealth.UnderVoltage);
        Assert.Equal(("False", "PowerSupplyOK"), (ok.Status, ok.Reason));
        Assert.Contains("under-voltage has occurred since boot", ok.Message);
    }

    [Fact]
    public void Allocatable_is_capacity_less_reservations_and_the_hard_eviction_threshold()
    {
        var (capacity, allocatable) = NodeCapacity.Compute(4, 4L << 30, 100L << 30, 110,
            ResourceReservation.Parse("--system-reserved", "cpu=250m,memory=256Mi"),
            ResourceReservation.Parse("--kube-reserved", "cpu=250m,memory=128Mi,ephemeral-storage=1Gi"),
            EvictionThresholds.Default);
        Assert.Equal("4", capacity["cpu"].ToString());
        Assert.Equal(4m * 1024 * 1024 * 1024, capacity["memory"].ToDecimal());
        Assert.Equal("110", capacity["pods"].ToString());
        Assert.Equal("3500m", allocatable["cpu"].ToString());
        Assert.Equal((4L << 30) - (256L << 20) - (128L << 20) - (100L << 20), allocatable["memory"].ToDecimal());
        Assert.Equal((100L << 30) - (1L << 30) - (10L << 30), allocatable["ephemeral-storage"].ToDecimal());

        Assert.Contains("--system-reserved: unknown resource \"gpu\"", Assert.Throws<FormatException>(() => ResourceReservation.Parse("--system-reserved", "gpu=1")).Message);
        Assert.Contains("\"lots\" is not a quantity", Assert.Throws<FormatException>(() => ResourceReservation.Parse("--kube-reserved", "memory=lots")).Message);
        Assert.Contains("unknown signal \"memory.free\"", Assert.Throws<FormatException>(() => EvictionThresholds.Parse("--eviction-hard", "memory.free<1Gi")).Message);
        Assert.Equal(10m, EvictionThresholds.Parse("--eviction-hard", "nodefs.available<10%")["nodefs.available"]!.Percentage);
    }

    [Fact]
    public void Host_reader_reads_procfs_and_sysfs_files_under_its_roots_and_tolerates_garbage()
    {
        var proc = Path.Combine(_root, "proc");
        var sys = Path.Combine(_root, "sys");
        Write(proc, "meminfo", "MemTotal:        3884620 kB\nMemFree:          123456 kB\nMemAvailable:    2000000 kB\n");
        Write(proc, "loadavg", "0.52 0.58 0.59 2/412 12345\n");
        Write(proc, "sys/kernel/pid_max", "32768\n");
        Write(proc, "stat", "cpu  1000 20 300 50000 100 0 30 0 0 0\ncpu0 1 2 3\n");
        Write(sys, "class/thermal/thermal_zone0/temp", "48312\n");
        Write(sys, HostReader.ThrottledFile, "0x50005\n");
        var host = new HostReader(proc, sys);
        Assert.Equal((3884620L * 1024, 2000000L * 1024), host.Memory());
        Assert.Equal((32768L, 412L), host.Pids());
        Assert.Equal(13.5, host.CpuSecondsTotal()); // (1000+20+300+30) ticks / 100
        Assert.Equal(48.312, host.ThermalZoneCelsius("thermal_zone0"));
        Assert.Equal(0x50005u, host.Throttled());
        Assert.False(host.UseVcgencmd);

        Write(sys, "class/thermal/thermal_zone0/temp", "garbage\n");
        Write(sys, HostReader.ThrottledFile, "throttled=0x0\n");
        Write(proc, "meminfo", "nonsense");
        Assert.Null(host.ThermalZoneCelsius("thermal_zone0"));
        Assert.Equal(0u, host.Throttled());
        Assert.Null(host.Memory());
        Assert.Null(host.ThermalZoneCelsius("thermal_zone9"));

        Write(proc, "meminfo", "MemTotal:\t3884620 kB\nMemFree: 1 kB\n");
        Write(proc, "loadavg", "0.52 0.58\n");
        Write(proc, "stat", "cpu  1000 x 300\n");
        Assert.Null(host.Memory()); // no MemAvailable
        Assert.Null(host.Pids());
        Assert.Null(host.CpuSecondsTotal());
        Write(proc, "loadavg", "0.52 0.58 0.59 7/98765 1");
        Write(proc, "stat", "cpu0 1 2 3\ncpu  1 2 3\n");
        Assert.Equal((32768L, 98765L), host.Pids()); // no trailing newline
        Assert.Null(host.CpuSecondsTotal()); // the total is the first line or nothing
        File.Delete(Path.Combine(proc, "sys/kernel/pid_max"));
        Assert.Null(host.Pids());
        Write(sys, HostReader.ThrottledFile, "");
        Assert.Null(host.Throttled());
    }

    [Fact]
    public void Host_reader_reads_this_machine_s_procfs()
    {
        var host = new HostReader();
        var (total, available) = Assert.NotNull(host.Memory());
        Assert.InRange(available, 1, total);
        var (max, used) = Assert.NotNull(host.Pids());
        Assert.InRange(used, 1, max);
        Assert.True(host.CpuSecondsTotal() > 0);
    }

    private static void Write(string root, string relative, string text)
    {
        var path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }
}
