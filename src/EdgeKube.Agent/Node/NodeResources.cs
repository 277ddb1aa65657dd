using System.Globalization;
using k8s.Models;

namespace EdgeKube.Agent.Node;

/// <summary>
/// A resource list given on the command line, as kubelet's <c>--system-reserved</c> and <c>--kube-reserved</c>:
/// <c>cpu=200m,memory=256Mi,ephemeral-storage=1Gi</c>.
/// </summary>
public sealed record ResourceReservation(IReadOnlyDictionary<string, decimal> Amounts)
{
    public static readonly ResourceReservation None = new(new Dictionary<string, decimal>());

    private static readonly string[] Known = ["cpu", "memory", "ephemeral-storage", "pid"];

    /// <summary>Parses the flag's value; throws <see cref="FormatException"/> with a message naming the flag.</summary>
    public static ResourceReservation Parse(string flag, string? text)
    {
        var amounts = new Dictionary<string, decimal>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(text))
        {
            return new(amounts);
        }

        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new FormatException($"{flag}: \"{part}\" is not name=quantity");
            }

            var name = part[..eq];
            if (!Known.Contains(name))
            {
                throw new FormatException($"{flag}: unknown resource \"{name}\" (cpu, memory, ephemeral-storage, pid)");
            }

            amounts[name] = Quantity(flag, part[(eq + 1)..]);
        }

        return new(amounts);
    }

    public decimal Get(string name) => Amounts.GetValueOrDefault(name);

    internal static decimal Quantity(string flag, string text)
    {
        try
        {
            var value = new ResourceQuantity(text).ToDecimal();
            return value < 0 ? throw new FormatException($"{flag}: \"{text}\" is negative") : value;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            throw new FormatException($"{flag}: \"{text}\" is not a quantity", e);
        }
    }
}

/// <summary>One hard eviction threshold: a signal below a quantity or a percentage of capacity.</summary>
public sealed record EvictionThreshold(string Signal, decimal? Quantity, decimal? Percentage)
{
    /// <summary>The threshold in absolute units for a capacity.</summary>
    public decimal For(decimal capacity) => Quantity ?? capacity * (Percentage ?? 0) / 100m;

    public override string ToString() => Quantity is { } q ? $"{Signal}<{q.ToString(CultureInfo.InvariantCulture)}" : $"{Signal}<{Percentage?.ToString(CultureInfo.InvariantCulture)}%";
}

/// <summary>
/// kubelet's <c>--eviction-hard</c>: <c>memory.available&lt;100Mi,nodefs.available&lt;10%,pid.available&lt;10%</c>.
/// The agent evaluates memory.available, nodefs.available and pid.available into the pressure conditions;
/// imagefs and inode signals are accepted (kubelet's default names them) and not evaluated.
/// </summary>
public sealed record EvictionThresholds(IReadOnlyList<EvictionThreshold> Items)
{
    /// <summary>kubelet's Linux defaults, plus pid.available so PIDPressure comes from a real reading.</summary>
    public const string DefaultText = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,pid.available<10%";

    // Before Default: static fields initialise in order.
    private static readonly string[] Signals = ["memory.available", "nodefs.available", "pid.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree"];

    public static readonly EvictionThresholds Default = Parse("--eviction-hard", DefaultText);

    public EvictionThreshold? this[string signal] => Items.FirstOrDefault(i => i.Signal == signal);

    public static EvictionThresholds Parse(string flag, string? text)
    {
        var items = new List<EvictionThreshold>();
        foreach (var part in (text ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var lt = part.IndexOf('<', StringComparison.Ordinal);
            if (lt <= 0)
            {
                throw new FormatException($"{flag}: \"{part}\" is not signal<quantity");
            }

            var signal = part[..lt];
            if (!Signals.Contains(signal))
            {
                throw new FormatException($"{flag}: unknown signal \"{signal}\" ({string.Join(", ", Signals)})");
            }

            var value = part[(lt + 1)..];
            if (value.EndsWith('%'))
            {
                if (!decimal.TryParse(value[..^1], NumberStyles.Number, CultureInfo.InvariantCulture, out var pct) || pct is < 0 or > 100)
                {
                    throw new FormatException($"{flag}: \"{value}\" is not a percentage (0-100%)");
                }

                items.Add(new EvictionThreshold(signal, null, pct));
            }
            else
            {
                items.Add(new EvictionThreshold(signal, ResourceReservation.Quantity(flag, value), null));
            }
        }

        return new(items);
    }
}

/// <summary>Capacity and allocatable as kubelet computes them: allocatable = capacity − kube-reserved − system-reserved − hard eviction threshold.</summary>
public static class NodeCapacity
{
    public static (Dictionary<string, ResourceQuantity> Capacity, Dictionary<string, ResourceQuantity> Allocatable) Compute(
        int cpus, long memoryBytes, long diskBytes, int maxPods, ResourceReservation systemReserved, ResourceReservation kubeReserved, EvictionThresholds eviction)
    {
        var capacity = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(cpus.ToString(CultureInfo.InvariantCulture)),
            ["memory"] = Bytes(memoryBytes),
            ["pods"] = new(maxPods.ToString(CultureInfo.InvariantCulture)),
            ["ephemeral-storage"] = Bytes(diskBytes),
        };
        decimal Reserved(string name) => systemReserved.Get(name) + kubeReserved.Get(name);
        var cpuMilli = Math.Max(0, (cpus * 1000m) - (Reserved("cpu") * 1000m));
        var memory = Math.Max(0, memoryBytes - Reserved("memory") - (eviction["memory.available"]?.For(memoryBytes) ?? 0));
        var disk = Math.Max(0, diskBytes - Reserved("ephemeral-storage") - (eviction["nodefs.available"]?.For(diskBytes) ?? 0));
        var allocatable = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(cpuMilli % 1000 == 0 ? (cpuMilli / 1000).ToString("0", CultureInfo.InvariantCulture) : $"{Math.Floor(cpuMilli).ToString("0", CultureInfo.InvariantCulture)}m"),
            ["memory"] = Bytes((long)memory),
            ["pods"] = capacity["pods"],
            ["ephemeral-storage"] = Bytes((long)disk),
        };
        return (capacity, allocatable);
    }

    /// <summary>Bytes as kubelet prints them: Ki when whole kibibytes, else plain bytes.</summary>
    public static ResourceQuantity Bytes(long bytes) =>
        new(bytes % 1024 == 0 ? $"{bytes / 1024}Ki" : bytes.ToString(CultureInfo.InvariantCulture));
}
