using System.Security.Cryptography;
using System.Text.Json;
using EdgeKube.Agent.Hosting;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Tests.Fakes;
using EdgeKube.Broker;
using EdgeKube.Testing;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Bench.Hollow;

/// <summary>
/// A hollow node, as Kubernetes' kubemark has them: the real agent (pod sources, workers, status,
/// node reporter, MQTT link) over an in-memory runtime instead of containerd, many in one process.
/// </summary>
public sealed class HollowNode(string name, AgentOptions options, ILoggerFactory loggers)
{
    public string Name { get; } = name;

    public FakeRuntime Runtime { get; } = CreateRuntime();

    private Agent.Hosting.Agent? _agent;

    public Task StartAsync()
    {
        _agent = new Agent.Hosting.Agent(options, Runtime, loggers, TimeProvider.System);
        return _agent.StartAsync(CancellationToken.None);
    }

    public async Task StopAsync()
    {
        if (_agent is { } agent)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await agent.StopAsync(cts.Token);
            agent.Dispose();
        }
    }

    public bool IsConnected => _agent?.Link?.IsConnected == true;

    /// <summary>Sandbox ids the runtime holds (a recreated pod gets a new one).</summary>
    public HashSet<string> SandboxIds() => [.. Runtime.AllSandboxes().Select(s => s.Id)];

    private static FakeRuntime CreateRuntime()
    {
        var runtime = new FakeRuntime(TimeProvider.System) { RecordCalls = false };
        runtime.AddImage(ContainerdHost.BusyboxImageName);
        return runtime;
    }
}

/// <summary>Many hollow nodes joined to one master's broker.</summary>
public sealed class HollowFleet : IAsyncDisposable
{
    private const string Password = "hollow-node-password";
    private readonly ILoggerFactory _loggers;
    // In memory when the machine has a tmpfs: every hollow node keeps its state files as an agent does (and
    // fsyncs them), and 10,000 of them on the one disk the master also writes to would measure the disk.
    private readonly string _root = Directory.Exists("/dev/shm")
        ? Directory.CreateDirectory(Path.Combine("/dev/shm", "edgekube-bench-hollow-" + Path.GetRandomFileName())).FullName
        : Directory.CreateTempSubdirectory("edgekube-bench-hollow-").FullName;

    public HollowFleet(int count, Func<int, int> brokerPortOf, TimeSpan keepAlive)
    {
        // Errors printed, warnings and errors counted (Warnings).
        _loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddFilter<Microsoft.Extensions.Logging.Console.ConsoleLoggerProvider>(level => level >= LogLevel.Error)
            .AddProvider(Warnings));
        var (procRoot, sysRoot) = SnapshotHost(_root);
        Nodes = [.. Enumerable.Range(0, count).Select(i =>
        {
            var name = NodeName(i);
            var options = new AgentOptions
            {
                NodeName = name,
                StateDir = Path.Combine(_root, name, "state"),
                PodLogsDir = Path.Combine(_root, name, "logs"),
                ContainerdSocket = "/nonexistent/hollow.sock",
                ReadOnlyPort = 0,
                // Empty: leave the host's pod network alone. A hollow node must not write the host's CNI
                // config or run `ip route` for every other node's pod CIDR (1,000 nodes: 10^6 route changes).
                CniConfDir = string.Empty,
                NodeIp = "127.0.0.1",
                // kubelet's 10 s (and kubemark's) instead of the agent's 1 s: a node publishes its status only
                // when it changed, so the master sees the same traffic, and 10,000 nodes in one process do not
                // rebuild and serialize 10,000 node objects a second.
                NodeStatusUpdateFrequency = TimeSpan.FromSeconds(10),
                ProcfsRoot = procRoot,
                SysfsRoot = sysRoot,
                Broker = new BrokerOptions { Url = new Uri($"mqtt://127.0.0.1:{brokerPortOf(i)}"), Username = name, Password = Password, KeepAlive = keepAlive },
            };
            return new HollowNode(name, options, _loggers);
        })];
    }

    public IReadOnlyList<HollowNode> Nodes { get; }

    /// <summary>The hollow nodes' warnings and errors, counted by logger and event.</summary>
    public LogCounter Warnings { get; } = new();

    /// <summary>
    /// One copy of the host files the agent samples (memory, PIDs, CPU time, kernel), taken once, for every
    /// hollow node to read, as kubemark's hollow kubelets get a fake cAdvisor with fixed machine facts: the
    /// bench measures the master, and 10,000 agents each opening /proc/stat, /proc/meminfo and
    /// /proc/loadavg every 10 s on one 2-core machine would measure the kernel's procfs instead. The agent
    /// reads these roots through its own <c>--procfs-root</c> and <c>--sysfs-root</c>; no thermal zone or
    /// firmware file is there, as on a machine without them.
    /// </summary>
    private static (string Proc, string Sys) SnapshotHost(string root)
    {
        var proc = Path.Combine(root, "host", "proc");
        var sys = Path.Combine(root, "host", "sys");
        Directory.CreateDirectory(sys);
        foreach (var file in new[] { "meminfo", "loadavg", "stat", "sys/kernel/pid_max", "sys/kernel/osrelease", "sys/kernel/random/boot_id" })
        {
            var target = Path.Combine(proc, file);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.WriteAllText(target, File.ReadAllText(Path.Combine("/proc", file)));
        }

        return (proc, sys);
    }

    public static string NodeName(int i) => $"hollow-{i:D5}";

    /// <summary>
    /// Writes the master's MQTT credential file for <paramref name="count"/> hollow nodes before it starts
    /// (what <c>node add</c> writes, without one file rewrite per node). One password and salt for all:
    /// each node's first connect still costs the broker one PBKDF2 check.
    /// </summary>
    public static void WriteCredentials(string dataDir, int count)
    {
        var hash = CredentialStore.Hash(Password, RandomNumberGenerator.GetBytes(12), 1000);
        var users = Enumerable.Range(0, count).ToDictionary(NodeName, _ => hash);
        var path = Path.Combine(dataDir, "mqtt-credentials.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new Dictionary<string, object> { ["users"] = users }));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>
    /// Hollow nodes connecting to the broker at once, at most. They all live in this one process: 10,000
    /// agents opening their links together kept it so busy that their MQTT handshakes ran past the
    /// 10 s timeout and each retry added work (no node registered in 4 minutes). A real fleet's boards are
    /// each their own machine; here the start is paced to what one process can answer in time.
    /// </summary>
    public int MaxConnecting { get; init; } = 250;

    /// <summary>Starts every node, with at most <see cref="MaxConnecting"/> of them still connecting; returns when all are connected.</summary>
    public async Task StartAsync()
    {
        using var slots = new SemaphoreSlim(MaxConnecting);
        var connecting = new List<Task>(Nodes.Count);
        foreach (var node in Nodes)
        {
            await slots.WaitAsync();
            await node.StartAsync();
            connecting.Add(ReleaseWhenConnectedAsync(node, slots));
        }

        await Task.WhenAll(connecting);
    }

    private static async Task ReleaseWhenConnectedAsync(HollowNode node, SemaphoreSlim slots)
    {
        try
        {
            while (!node.IsConnected)
            {
                await Task.Delay(50);
            }
        }
        finally
        {
            slots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(Nodes.Select(n => n.StopAsync()));
        _loggers.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
