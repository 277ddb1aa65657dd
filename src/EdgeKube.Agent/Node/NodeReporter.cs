using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Runtime;
using EdgeKube.Protocol;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Node;

/// <summary>
/// Registers the node and keeps its status current at the master: capacity, allocatable, node info,
/// addresses, labels and conditions, published retained on change only; and the lease, a few bytes
/// every <see cref="LeasePeriod"/>, that tells the master the node is alive.
/// </summary>
public sealed partial class NodeReporter(
    MqttLink link,
    string nodeName,
    string? nodeIp,
    string stateDir,
    IContainerRuntime runtime,
    RuntimeObserver observer,
    TimeProvider time,
    ILogger<NodeReporter> logger)
{
    private string? _lastJson;
    private V1NodeStatus? _last;
    private string _runtimeVersion = "containerd://unknown";

    public TimeSpan LeasePeriod { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan StatusPeriod { get; init; } = TimeSpan.FromSeconds(10);

    public int MaxPods { get; init; } = 110;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            var version = await runtime.VersionAsync(cancellationToken).ConfigureAwait(false);
            _runtimeVersion = $"{version.RuntimeName}://{version.RuntimeVersion}";
        }
        catch (RuntimeException)
        {
        }

        link.Connected += () =>
        {
            _lastJson = null; // republish on every connect
            return ReportAsync(cancellationToken);
        };
        var nextStatus = TimeSpan.Zero;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (nextStatus <= TimeSpan.Zero)
            {
                await ReportAsync(cancellationToken).ConfigureAwait(false);
                nextStatus = StatusPeriod;
            }

            var lease = new Lease(time.GetUtcNow(), (int)(LeasePeriod.TotalSeconds * 4));
            await link.PublishAsync(link.Topics.Lease(nodeName), JsonSerializer.SerializeToUtf8Bytes(lease, ProtocolJson.Default.Lease), cancellationToken).ConfigureAwait(false);
            await Task.Delay(LeasePeriod, time, cancellationToken).ConfigureAwait(false);
            nextStatus -= LeasePeriod;
        }
    }

    /// <summary>Publishes the node when it changed since the last publish.</summary>
    public async Task ReportAsync(CancellationToken cancellationToken)
    {
        var node = BuildNode();
        var json = KubernetesJson.Serialize(node);
        if (json == _lastJson)
        {
            return;
        }

        _lastJson = json;
        var ready = node.Status.Conditions.First(c => c.Type == "Ready");
        LogReported(nodeName, ready.Status, ready.Reason);
        await link.PublishRetainedAsync(link.Topics.NodeStatus(nodeName), Encoding.UTF8.GetBytes(json), cancellationToken).ConfigureAwait(false);
    }

    public V1Node BuildNode()
    {
        var now = time.GetUtcNow().UtcDateTime;
        var memory = MemInfo();
        var (diskTotal, diskFree) = Disk(stateDir);
        var capacity = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
            ["memory"] = new($"{memory.TotalKiB}Ki"),
            ["pods"] = new(MaxPods.ToString(CultureInfo.InvariantCulture)),
            ["ephemeral-storage"] = new($"{diskTotal / 1024}Ki"),
        };
        var runtimeReady = observer.IsHealthy(TimeSpan.FromSeconds(30));
        var memoryPressure = memory.AvailableKiB < 100 * 1024;
        var diskPressure = diskTotal > 0 && diskFree * 10 < diskTotal;
        var status = new V1NodeStatus
        {
            Capacity = capacity,
            Allocatable = new Dictionary<string, ResourceQuantity>(capacity),
            Addresses = [new V1NodeAddress { Type = "Hostname", Address = nodeName }],
            NodeInfo = new V1NodeSystemInfo
            {
                Architecture = RuntimeInformation.OSArchitecture switch { Architecture.Arm64 => "arm64", Architecture.X64 => "amd64", Architecture.Arm => "arm", var a => a.ToString().ToLowerInvariant() },
                OperatingSystem = "linux",
                KernelVersion = ReadFirstLine("/proc/sys/kernel/osrelease") ?? Environment.OSVersion.Version.ToString(),
                OsImage = OsImage(),
                ContainerRuntimeVersion = _runtimeVersion,
                KubeletVersion = "v1.32.0-edgekube",
                KubeProxyVersion = string.Empty,
                MachineID = ReadFirstLine("/etc/machine-id") ?? string.Empty,
                SystemUUID = ReadFirstLine("/sys/class/dmi/id/product_uuid") ?? string.Empty,
                BootID = ReadFirstLine("/proc/sys/kernel/random/boot_id") ?? string.Empty,
            },
            DaemonEndpoints = new V1NodeDaemonEndpoints { KubeletEndpoint = new V1DaemonEndpoint { Port = 10250 } },
        };
        if (nodeIp is { Length: > 0 })
        {
            status.Addresses.Insert(0, new V1NodeAddress { Type = "InternalIP", Address = nodeIp });
        }

        status.Conditions =
        [
            Condition("MemoryPressure", memoryPressure, memoryPressure ? "KubeletHasInsufficientMemory" : "KubeletHasSufficientMemory",
                memoryPressure ? "kubelet has insufficient memory available" : "kubelet has sufficient memory available", now),
            Condition("DiskPressure", diskPressure, diskPressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                diskPressure ? "kubelet has disk pressure" : "kubelet has no disk pressure", now),
            Condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", now),
            Condition("Ready", runtimeReady, runtimeReady ? "KubeletReady" : "KubeletNotReady",
                runtimeReady ? "kubelet is posting ready status" : $"container runtime is down: {observer.LastError ?? "no answer yet"}", now),
        ];
        _last = status;
        var labels = new Dictionary<string, string>
        {
            ["kubernetes.io/arch"] = status.NodeInfo.Architecture,
            ["kubernetes.io/os"] = "linux",
            ["kubernetes.io/hostname"] = nodeName,
            ["beta.kubernetes.io/arch"] = status.NodeInfo.Architecture,
            ["beta.kubernetes.io/os"] = "linux",
        };
        if (BoardModel() is { } model)
        {
            labels["edgekube.io/board"] = LabelValue(model);
        }

        return new V1Node
        {
            ApiVersion = "v1",
            Kind = "Node",
            Metadata = new V1ObjectMeta { Name = nodeName, Labels = labels },
            Status = status,
        };
    }

    [LoggerMessage(EventId = 1200, Level = LogLevel.Debug, Message = "Node {Node} status changed: Ready={Ready} ({Reason})")]
    private partial void LogReported(string node, string ready, string reason);

    private V1NodeCondition Condition(string type, bool value, string reason, string message, DateTime now)
    {
        var text = value ? "True" : "False";
        var old = _last?.Conditions?.FirstOrDefault(c => c.Type == type);
        return new V1NodeCondition
        {
            Type = type,
            Status = text,
            Reason = reason,
            Message = message,
            LastHeartbeatTime = old?.Status == text ? old.LastHeartbeatTime : now.TruncateToSecondsUtc(),
            LastTransitionTime = old?.Status == text ? old.LastTransitionTime : now.TruncateToSecondsUtc(),
        };
    }

    /// <summary>The board model from the device tree ("Raspberry Pi 4 Model B Rev 1.4"), or null off a board.</summary>
    public static string? BoardModel() => ReadFirstLine("/proc/device-tree/model")?.TrimEnd('\0');

    /// <summary>A label value: alphanumerics, '-', '_', '.', at most 63, alphanumeric at both ends.</summary>
    public static string LabelValue(string text)
    {
        var chars = text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray();
        var value = new string(chars).Trim('-', '_', '.');
        return value.Length > 63 ? value[..63].TrimEnd('-', '_', '.') : value;
    }

    private static string OsImage()
    {
        foreach (var line in SafeLines("/etc/os-release"))
        {
            if (line.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))
            {
                return line["PRETTY_NAME=".Length..].Trim('"');
            }
        }

        return "Linux";
    }

    private static (long TotalKiB, long AvailableKiB) MemInfo()
    {
        long total = 0, available = 0;
        foreach (var line in SafeLines("/proc/meminfo"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var kib))
            {
                continue;
            }

            if (parts[0] == "MemTotal:")
            {
                total = kib;
            }
            else if (parts[0] == "MemAvailable:")
            {
                available = kib;
            }
        }

        return (total, available);
    }

    private static (long Total, long Free) Disk(string path)
    {
        try
        {
            var drive = new DriveInfo(Directory.Exists(path) ? path : "/");
            return (drive.TotalSize, drive.AvailableFreeSpace);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return (0, 0);
        }
    }

    private static string? ReadFirstLine(string path) => SafeLines(path).FirstOrDefault()?.Trim();

    private static IEnumerable<string> SafeLines(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllLines(path) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}

internal static class DateTimeExtensions
{
    public static DateTime TruncateToSecondsUtc(this DateTime time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
