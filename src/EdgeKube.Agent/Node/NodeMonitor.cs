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
/// <see cref="Changed"/> when the node differs from the last sample. Between samples it looks at the
/// runtime's health every <see cref="RuntimeCheckPeriod"/> and samples at once when that changed, so Ready
/// follows the runtime within a second while the machine's figures are read at kubelet's pace. The MQTT
/// reporter and the LED board listen; nothing else computes node status.
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
    // The last node as UTF-8 JSON, and the writer a sample serializes into (under _lock): compared as bytes,
    // a sample that changed nothing (nearly all of them, one a second) builds no string.
    private readonly System.Buffers.ArrayBufferWriter<byte> _json = new(4096);
    private byte[] _lastJson = [];
    private string _runtimeVersion = "containerd://unknown";
    private HostFacts? _facts;
    private (long Memory, long Disk, Dictionary<string, ResourceQuantity> Capacity, Dictionary<string, ResourceQuantity> Allocatable)? _resources;
    private (bool Ready, string? Error) _sampledRuntime;

    /// <summary>How often the machine is sampled: kubelet's eviction manager (memory, disk, PID pressure) and node status both look every 10 s.</summary>
    public TimeSpan SamplePeriod { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the runtime's health is compared with the last sample's; a change samples at once.</summary>
    public TimeSpan RuntimeCheckPeriod { get; init; } = TimeSpan.FromSeconds(1);

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

        using var timer = new PeriodicTimer(RuntimeCheckPeriod, time);
        var due = time.GetUtcNow();
        do
        {
            (bool, string?) sampled;
            lock (_lock)
            {
                sampled = _sampledRuntime;
            }

            if (time.GetUtcNow() >= due || RuntimeHealth() != sampled)
            {
                await SampleAsync().ConfigureAwait(false);
                due = time.GetUtcNow() + SamplePeriod;
            }
        }
        while (await WaitAsync(timer, cancellationToken).ConfigureAwait(false));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private (bool Ready, string? Error) RuntimeHealth() => (observer.IsHealthy(TimeSpan.FromSeconds(30)), observer.LastError);

    /// <summary>Samples now; raises <see cref="Changed"/> when the node changed.</summary>
    public async Task SampleAsync()
    {
        V1Node node;
        lock (_lock)
        {
            node = Build();
            _json.ResetWrittenCount();
            KubeJson.Serialize(node, _json);
            if (_json.WrittenSpan.SequenceEqual(_lastJson))
            {
                return;
            }

            _lastJson = _json.WrittenSpan.ToArray();
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
        var runtimeHealth = RuntimeHealth();
        _sampledRuntime = runtimeHealth;
        var facts = _facts ??= HostFacts.Read(host);
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
            RuntimeReady = runtimeHealth.Ready,
            RuntimeError = runtimeHealth.Error,
        };
        Readings = readings;
        var (capacity, allocatable) = Resources(memory?.Total ?? 0, diskTotal ?? 0);
        var status = new V1NodeStatus
        {
            Capacity = capacity,
            Allocatable = allocatable,
            Addresses = [new V1NodeAddress { Type = "Hostname", Address = options.NodeName }],
            NodeInfo = new V1NodeSystemInfo
            {
                Architecture = facts.Architecture,
                OperatingSystem = "linux",
                KernelVersion = facts.KernelVersion,
                OsImage = facts.OsImage,
                ContainerRuntimeVersion = _runtimeVersion,
                KubeletVersion = "v1.32.0-edgekube",
                KubeProxyVersion = string.Empty,
                MachineID = facts.MachineId,
                SystemUUID = facts.SystemUuid,
                BootID = facts.BootId,
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
        if (facts.BoardLabel is { Length: > 0 } board)
        {
            labels["edgekube.io/board"] = board;
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

    /// <summary>
    /// Capacity and allocatable for these totals: computed again only when a total changed (they stay the
    /// same while the machine is up), as copies the decorators may add to.
    /// </summary>
    private (Dictionary<string, ResourceQuantity> Capacity, Dictionary<string, ResourceQuantity> Allocatable) Resources(long memoryTotal, long diskTotal)
    {
        if (_resources is not { } known || known.Memory != memoryTotal || known.Disk != diskTotal)
        {
            var (capacity, allocatable) = NodeCapacity.Compute(Environment.ProcessorCount, memoryTotal, diskTotal, options.MaxPods, _systemReserved, _kubeReserved, _eviction);
            known = (memoryTotal, diskTotal, capacity, allocatable);
            _resources = known;
        }

        return (new(known.Capacity, StringComparer.Ordinal), new(known.Allocatable, StringComparer.Ordinal));
    }

    /// <summary>A label value: alphanumerics, '-', '_', '.', at most 63, alphanumeric at both ends.</summary>
    public static string LabelValue(string text)
    {
        var chars = text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray();
        var value = new string(chars).Trim('-', '_', '.');
        return value.Length > 63 ? value[..63].TrimEnd('-', '_', '.') : value;
    }

    /// <summary>What does not change while the machine is up (not without a reboot): read once, not on every sample.</summary>
    private sealed record HostFacts(string Architecture, string KernelVersion, string OsImage, string MachineId, string SystemUuid, string BootId, string? BoardLabel)
    {
        public static HostFacts Read(HostReader host) => new(
            RuntimeInformation.OSArchitecture switch { System.Runtime.InteropServices.Architecture.Arm64 => "arm64", System.Runtime.InteropServices.Architecture.X64 => "amd64", System.Runtime.InteropServices.Architecture.Arm => "arm", var a => a.ToString().ToLowerInvariant() },
            HostReader.FirstLine(Path.Combine(host.ProcRoot, "sys/kernel/osrelease"))?.Trim() ?? Environment.OSVersion.Version.ToString(),
            ReadOsImage(),
            HostReader.FirstLine("/etc/machine-id")?.Trim() ?? string.Empty,
            HostReader.FirstLine(Path.Combine(host.SysRoot, "class/dmi/id/product_uuid"))?.Trim() ?? string.Empty,
            HostReader.FirstLine(Path.Combine(host.ProcRoot, "sys/kernel/random/boot_id"))?.Trim() ?? string.Empty,
            HostReader.FirstLine("/proc/device-tree/model")?.TrimEnd('\0') is { Length: > 0 } model ? LabelValue(model) : null);
    }

    private static string ReadOsImage()
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
