using EdgeKube.Agent.Json;
using System.Runtime.InteropServices;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Hosting;
using EdgeKube.Agent.Runtime;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Node;

/// <summary>Adds to the node what a part of the agent knows (sensor annotations, labels, extended resources).</summary>
public interface INodeDecorator
{
    void Decorate(V1Node node);
}

/// <summary>
/// The one owner of the node's status: samples the machine every <see cref="SamplePeriod"/> (capacity,
/// allocatable, node info, addresses, conditions, and what the decorators add) and raises
/// <see cref="Changed"/> when the node differs from the last sample. The MQTT reporter and the LED
/// board listen; nothing else computes node status.
/// </summary>
public sealed partial class NodeMonitor(
    AgentOptions options,
    string? nodeIp,
    IContainerRuntime runtime,
    RuntimeObserver observer,
    HostReader host,
    IReadOnlyList<INodeDecorator> decorators,
    TimeProvider time,
    ILogger<NodeMonitor> logger)
{
    private readonly NodeHealth _health = new(
        EvictionThresholds.Parse("--eviction-hard", options.EvictionHard), options.Board.ThermalSettings(), options.EvictionPressureTransitionPeriod, time);
    private readonly ResourceReservation _systemReserved = ResourceReservation.Parse("--system-reserved", options.SystemReserved);
    private readonly ResourceReservation _kubeReserved = ResourceReservation.Parse("--kube-reserved", options.KubeReserved);
    private readonly EvictionThresholds _eviction = EvictionThresholds.Parse("--eviction-hard", options.EvictionHard);
    private readonly Lock _lock = new();
    private string? _lastJson;
    private string _runtimeVersion = "containerd://unknown";

    public TimeSpan SamplePeriod { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The last node sampled; null before the first sample.</summary>
    public V1Node? Current { get; private set; }

    /// <summary>The last readings sampled.</summary>
    public HealthReadings? Readings { get; private set; }

    /// <summary>Raised after a sample that changed the node (JSON differs), with the new node.</summary>
    public event Func<V1Node, Task>? Changed;

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

        while (!cancellationToken.IsCancellationRequested)
        {
            await SampleAsync().ConfigureAwait(false);
            try
            {
                await Task.Delay(SamplePeriod, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Samples now; raises <see cref="Changed"/> when the node changed.</summary>
    public async Task SampleAsync()
    {
        V1Node node;
        string json;
        lock (_lock)
        {
            node = Build();
            json = KubeJson.Serialize(node);
            if (json == _lastJson)
            {
                return;
            }

            _lastJson = json;
            Current = node;
        }

        var ready = node.Status.Conditions.First(c => c.Type == "Ready");
        LogChanged(options.NodeName, ready.Status, ready.Reason, string.Join(",", node.Status.Conditions.Where(c => c.Type != "Ready" && c.Status == "True").Select(c => c.Type)));
        if (Changed is { } handlers)
        {
            foreach (var handler in handlers.GetInvocationList().Cast<Func<V1Node, Task>>())
            {
                try
                {
                    await handler(node).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogListenerFailed(e.Message);
                }
            }
        }
    }

    private V1Node Build()
    {
        var memory = host.Memory();
        var (diskTotal, diskFree) = Disk(options.StateDir);
        var pids = host.Pids();
        var readings = new HealthReadings
        {
            MemoryTotal = memory?.Total,
            MemoryAvailable = memory?.Available,
            DiskTotal = diskTotal,
            DiskAvailable = diskFree,
            PidMax = pids?.Max,
            PidUsed = pids?.Used,
            CpuCelsius = host.ThermalZoneCelsius(options.Board.ThermalSettings().Zone),
            Throttled = host.Throttled(),
            RuntimeReady = observer.IsHealthy(TimeSpan.FromSeconds(30)),
            RuntimeError = observer.LastError,
        };
        Readings = readings;
        var (capacity, allocatable) = NodeCapacity.Compute(Environment.ProcessorCount, memory?.Total ?? 0, diskTotal ?? 0, options.MaxPods, _systemReserved, _kubeReserved, _eviction);
        var status = new V1NodeStatus
        {
            Capacity = capacity,
            Allocatable = allocatable,
            Addresses = [new V1NodeAddress { Type = "Hostname", Address = options.NodeName }],
            NodeInfo = new V1NodeSystemInfo
            {
                Architecture = RuntimeInformation.OSArchitecture switch { Architecture.Arm64 => "arm64", Architecture.X64 => "amd64", Architecture.Arm => "arm", var a => a.ToString().ToLowerInvariant() },
                OperatingSystem = "linux",
                KernelVersion = HostReader.FirstLine(Path.Combine(host.ProcRoot, "sys/kernel/osrelease"))?.Trim() ?? Environment.OSVersion.Version.ToString(),
                OsImage = OsImage(),
                ContainerRuntimeVersion = _runtimeVersion,
                KubeletVersion = "v1.32.0-edgekube",
                KubeProxyVersion = string.Empty,
                MachineID = HostReader.FirstLine("/etc/machine-id")?.Trim() ?? string.Empty,
                SystemUUID = HostReader.FirstLine(Path.Combine(host.SysRoot, "class/dmi/id/product_uuid"))?.Trim() ?? string.Empty,
                BootID = HostReader.FirstLine(Path.Combine(host.ProcRoot, "sys/kernel/random/boot_id"))?.Trim() ?? string.Empty,
            },
            DaemonEndpoints = new V1NodeDaemonEndpoints { KubeletEndpoint = new V1DaemonEndpoint { Port = 10250 } },
            Conditions = [.. _health.Evaluate(readings)],
        };
        if (nodeIp is { Length: > 0 })
        {
            status.Addresses.Insert(0, new V1NodeAddress { Type = "InternalIP", Address = nodeIp });
        }

        var labels = new Dictionary<string, string>
        {
            ["kubernetes.io/arch"] = status.NodeInfo.Architecture,
            ["kubernetes.io/os"] = "linux",
            ["kubernetes.io/hostname"] = options.NodeName,
            ["beta.kubernetes.io/arch"] = status.NodeInfo.Architecture,
            ["beta.kubernetes.io/os"] = "linux",
        };
        if (HostReader.FirstLine("/proc/device-tree/model")?.TrimEnd('\0') is { Length: > 0 } model)
        {
            labels["edgekube.io/board"] = LabelValue(model);
        }

        var node = new V1Node
        {
            ApiVersion = "v1",
            Kind = "Node",
            Metadata = new V1ObjectMeta { Name = options.NodeName, Labels = labels, Annotations = new Dictionary<string, string>() },
            Status = status,
        };
        foreach (var decorator in decorators)
        {
            decorator.Decorate(node);
        }

        return node;
    }

    /// <summary>A label value: alphanumerics, '-', '_', '.', at most 63, alphanumeric at both ends.</summary>
    public static string LabelValue(string text)
    {
        var chars = text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray();
        var value = new string(chars).Trim('-', '_', '.');
        return value.Length > 63 ? value[..63].TrimEnd('-', '_', '.') : value;
    }

    private static string OsImage()
    {
        foreach (var line in HostReader.Lines("/etc/os-release"))
        {
            if (line.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))
            {
                return line["PRETTY_NAME=".Length..].Trim('"');
            }
        }

        return "Linux";
    }

    private static (long? Total, long? Free) Disk(string path)
    {
        try
        {
            var drive = new DriveInfo(Directory.Exists(path) ? path : "/");
            return (drive.TotalSize, drive.AvailableFreeSpace);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return (null, null);
        }
    }

    [LoggerMessage(EventId = 1210, Level = LogLevel.Information, Message = "Node {Node}: Ready={Ready} ({Reason}); conditions true: {Conditions}")]
    private partial void LogChanged(string node, string ready, string reason, string conditions);

    [LoggerMessage(EventId = 1211, Level = LogLevel.Warning, Message = "A node status listener failed: {Error}")]
    private partial void LogListenerFailed(string error);
}
