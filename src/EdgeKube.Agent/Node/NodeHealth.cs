using System.Globalization;
using k8s.Models;

namespace EdgeKube.Agent.Node;

/// <summary>One sample of the figures the node conditions come from; null where the machine has no such figure.</summary>
public sealed record HealthReadings
{
    public long? MemoryTotal { get; init; }

    public long? MemoryAvailable { get; init; }

    public long? DiskTotal { get; init; }

    public long? DiskAvailable { get; init; }

    public long? PidMax { get; init; }

    public long? PidUsed { get; init; }

    public double? CpuCelsius { get; init; }

    public uint? Throttled { get; init; }

    public bool RuntimeReady { get; init; } = true;

    public string? RuntimeError { get; init; }
}

/// <summary>Thermal throttling thresholds: the condition turns True at <see cref="ThrottleCelsius"/> and clears below <see cref="ClearCelsius"/>.</summary>
public sealed record ThermalSettings(string Zone = "thermal_zone0", double ThrottleCelsius = 80, double ClearCelsius = 75);

/// <summary>The Raspberry Pi firmware's get_throttled bits.</summary>
[Flags]
public enum ThrottledFlags : uint
{
    None = 0,
    UnderVoltage = 1 << 0,
    FrequencyCapped = 1 << 1,
    Throttled = 1 << 2,
    SoftTempLimit = 1 << 3,
    UnderVoltageOccurred = 1 << 16,
    FrequencyCappedOccurred = 1 << 17,
    ThrottledOccurred = 1 << 18,
    SoftTempLimitOccurred = 1 << 19,
}

/// <summary>
/// Computes the node conditions from readings, as kubelet does: MemoryPressure, DiskPressure, PIDPressure
/// against the hard eviction thresholds (a pressure stays True for the transition period after its signal
/// clears, kubelet's <c>--eviction-pressure-transition-period</c>), Ready from the runtime, and the board
/// conditions ThermalThrottling and UnderVoltage. Keeps transition times across calls; not thread-safe.
/// </summary>
public sealed class NodeHealth(EvictionThresholds eviction, ThermalSettings thermal, TimeSpan transitionPeriod, TimeProvider time)
{
    public const string ThermalThrottling = "ThermalThrottling";
    public const string UnderVoltage = "UnderVoltage";

    private readonly Dictionary<string, DateTimeOffset> _lastObserved = [];
    private readonly Dictionary<string, V1NodeCondition> _last = [];
    private bool _hot;

    public IReadOnlyList<V1NodeCondition> Evaluate(HealthReadings r)
    {
        var now = time.GetUtcNow();
        var list = new List<V1NodeCondition>();

        var memory = Pressure("MemoryPressure", r.MemoryAvailable is { } ma && r.MemoryTotal is { } mt && ma < (eviction["memory.available"]?.For(mt) ?? -1), now);
        list.Add(Make("MemoryPressure", memory, memory ? "KubeletHasInsufficientMemory" : "KubeletHasSufficientMemory",
            memory ? "kubelet has insufficient memory available" : "kubelet has sufficient memory available", now));

        var disk = Pressure("DiskPressure", r.DiskAvailable is { } da && r.DiskTotal is { } dt && dt > 0 && da < (eviction["nodefs.available"]?.For(dt) ?? -1), now);
        list.Add(Make("DiskPressure", disk, disk ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
            disk ? "kubelet has disk pressure" : "kubelet has no disk pressure", now));

        var pid = Pressure("PIDPressure", r.PidMax is { } pm && r.PidUsed is { } pu && pm - pu < (eviction["pid.available"]?.For(pm) ?? -1), now);
        list.Add(Make("PIDPressure", pid, pid ? "KubeletHasInsufficientPID" : "KubeletHasSufficientPID",
            pid ? "kubelet has insufficient PID available" : "kubelet has sufficient PID available", now));

        list.Add(Make("Ready", r.RuntimeReady, r.RuntimeReady ? "KubeletReady" : "KubeletNotReady",
            r.RuntimeReady ? "kubelet is posting ready status"
            : r.RuntimeError is { } error ? $"container runtime is down: {error}"
            : "container runtime status check may not have completed yet", now));

        var flags = (ThrottledFlags)(r.Throttled ?? 0);
        if (r.CpuCelsius is { } celsius)
        {
            _hot = _hot ? celsius >= thermal.ClearCelsius : celsius >= thermal.ThrottleCelsius;
        }

        var firmwareThermal = flags.HasFlag(ThrottledFlags.SoftTempLimit) || (flags.HasFlag(ThrottledFlags.Throttled) && !flags.HasFlag(ThrottledFlags.UnderVoltage));
        if (r.CpuCelsius is not null || r.Throttled is not null)
        {
            var temp = r.CpuCelsius is { } c ? $"CPU temperature {c.ToString("0.0", CultureInfo.InvariantCulture)}°C" : "CPU temperature unknown";
            var (hot, reason, message) = (_hot, firmwareThermal) switch
            {
                (true, _) => (true, "CPUTemperatureHigh", $"{temp} reached the throttling threshold {thermal.ThrottleCelsius.ToString(CultureInfo.InvariantCulture)}°C"),
                (false, true) => (true, "FirmwareThrottling", $"{temp}; the firmware reports {Describe(flags)}"),
                _ => (false, "CPUTemperatureNormal", $"{temp}, below {thermal.ThrottleCelsius.ToString(CultureInfo.InvariantCulture)}°C"),
            };
            list.Add(Make(ThermalThrottling, hot, reason, message, now, sticky: true));
        }

        if (r.Throttled is not null)
        {
            var low = flags.HasFlag(ThrottledFlags.UnderVoltage);
            var since = flags.HasFlag(ThrottledFlags.UnderVoltageOccurred) ? "; under-voltage has occurred since boot" : string.Empty;
            list.Add(Make(UnderVoltage, low, low ? "UnderVoltageDetected" : "PowerSupplyOK",
                low ? $"the power supply is below 4.63 V; the firmware reports {Describe(flags)}" : $"the power supply is sufficient{since}", now));
        }

        return list;
    }

    /// <summary>The firmware flags in words.</summary>
    public static string Describe(ThrottledFlags flags)
    {
        var words = new List<string>();
        if (flags.HasFlag(ThrottledFlags.UnderVoltage))
        {
            words.Add("under-voltage");
        }

        if (flags.HasFlag(ThrottledFlags.FrequencyCapped))
        {
            words.Add("arm frequency capped");
        }

        if (flags.HasFlag(ThrottledFlags.Throttled))
        {
            words.Add("throttled");
        }

        if (flags.HasFlag(ThrottledFlags.SoftTempLimit))
        {
            words.Add("soft temperature limit active");
        }

        return words.Count == 0 ? "nothing" : string.Join(", ", words) + string.Create(CultureInfo.InvariantCulture, $" (0x{(uint)flags:x})");
    }

    private bool Pressure(string type, bool observed, DateTimeOffset now)
    {
        if (observed)
        {
            _lastObserved[type] = now;
            return true;
        }

        return _lastObserved.TryGetValue(type, out var last) && now - last < transitionPeriod;
    }

    private V1NodeCondition Make(string type, bool value, string reason, string message, DateTimeOffset now, bool sticky = false)
    {
        var text = value ? "True" : "False";
        var stamp = now.UtcDateTime.TruncateToSecondsUtc();
        _last.TryGetValue(type, out var old);
        // Sticky: same status and reason keep the old message, so a temperature drifting by a tenth publishes nothing.
        var same = old?.Status == text && old.Reason == reason && (sticky || old.Message == message);
        var condition = new V1NodeCondition
        {
            Type = type,
            Status = text,
            Reason = reason,
            Message = same ? old!.Message : message,
            // The heartbeat moves only with a change, so an unchanged node publishes nothing.
            LastHeartbeatTime = same ? old!.LastHeartbeatTime : stamp,
            LastTransitionTime = old?.Status == text ? old.LastTransitionTime : stamp,
        };
        _last[type] = condition;
        return condition;
    }
}
