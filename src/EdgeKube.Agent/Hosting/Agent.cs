using System.Net.NetworkInformation;
using System.Net.Sockets;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Node;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Pods.Sources;
using EdgeKube.Agent.Probes;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Server;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Hosting;

/// <summary>
/// The agent's main loop: connects to the runtime, loads what it persisted, starts the pod sources,
/// the runtime observer, the pod workers and the read-only endpoint. Pods keep running when the agent
/// stops: a restarted agent adopts them.
/// </summary>
public sealed partial class Agent(AgentOptions options, IContainerRuntime runtime, ILoggerFactory loggers, TimeProvider time) : BackgroundService
{
    private readonly ILogger<Agent> _logger = loggers.CreateLogger<Agent>();

    /// <summary>Set once the agent has connected and started its loops.</summary>
    public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PodWorkers? Workers { get; private set; }

    public StatusManager? Statuses { get; private set; }

    public DesiredPodStore? Desired { get; private set; }

    public NodeMonitor? Monitor { get; private set; }

    public Board.Leds.LedBoard? Leds { get; private set; }

    /// <summary>The link to the broker, once started (null without <c>--broker-url</c>).</summary>
    public MqttLink? Link { get; private set; }

    /// <summary>The board's buses; the real ones unless set (tests hand in simulated ones).</summary>
    public Board.BoardBuses? Buses { get; init; }

    private RuntimeObserver? _observer;
    private long _connectTurnTicks = time.GetUtcNow().UtcTicks;

    /// <summary>
    /// Whether the main loop still turns: the runtime handshake loop before the agent has started,
    /// the runtime relist loop (kubelet's PLEG) after. Every CRI call has a deadline, so a loop that
    /// has not turned within <paramref name="tolerance"/> is hung. The systemd watchdog pings only while this holds.
    /// </summary>
    public bool IsAlive(TimeSpan tolerance)
    {
        var connectTurn = new DateTimeOffset(Interlocked.Read(ref _connectTurnTicks), TimeSpan.Zero);
        var last = Volatile.Read(ref _observer) is { } o ? o.LastTurn ?? connectTurn : connectTurn;
        return time.GetUtcNow() - last <= tolerance;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var version = await ConnectAsync(stoppingToken).ConfigureAwait(false);
        LogConnected(version.RuntimeName, version.RuntimeVersion, version.RuntimeApiVersion, options.ContainerdSocket);

        var devices = Board.DeviceResources.From(options.Board);
        var layout = new NodeLayout(options.NodeName, Path.Combine(options.StateDir, "pods"), options.PodLogsDir, NodeFacts.MemoryCapacityBytes()) { Devices = devices.Present() };
        Directory.CreateDirectory(layout.PodsDirectory);

        var desired = new DesiredPodStore(options.StateDir, loggers.CreateLogger<DesiredPodStore>());
        var statuses = new StatusManager(options.StateDir, loggers.CreateLogger<StatusManager>());
        desired.Load();
        statuses.Load();
        Desired = desired;
        Statuses = statuses;

        var crashBackoff = Backoff.ForCrashLoop(time);
        var imageBackoff = Backoff.ForImagePull(time);
        using var probes = new ProbeManager(runtime, time, loggers.CreateLogger<ProbeManager>());
        var syncer = new PodSyncer(runtime, new RuntimeConfigBuilder(layout), crashBackoff, imageBackoff, time, loggers.CreateLogger<PodSyncer>());
        var hostIp = options.NodeIp is { Length: > 0 } ip ? ip : NodeFacts.PrimaryIPv4();
        var observer = new RuntimeObserver(runtime, time, loggers.CreateLogger<RuntimeObserver>());
        var context = new PodWorkerContext(runtime, new RuntimeInspector(runtime, observer), syncer, probes, statuses, crashBackoff, imageBackoff, layout,
            () => hostIp, time, loggers.CreateLogger<PodWorker>());
        var workers = new PodWorkers(context, loggers.CreateLogger<PodWorkers>());
        Workers = workers;
        workers.Start(stoppingToken);

        Interlocked.Exchange(ref _connectTurnTicks, time.GetUtcNow().UtcTicks);
        Volatile.Write(ref _observer, observer);
        observer.PodChanged += workers.Wake;
        observer.Relisted += workers.OnRelisted;
        probes.ResultChanged += workers.Wake;
        desired.PodUpdated += workers.UpdatePod;
        desired.PodRemoved += workers.RemovePod;

        foreach (var pod in desired.All())
        {
            workers.UpdatePod(pod);
        }

        var host = new HostReader(options.ProcfsRoot, options.SysfsRoot);
        using var buses = Buses ?? Board.BoardBuses.Real(options.Board.GpioChip);
        var sensors = new Board.Sensors.SensorHub(Board.SensorFactory.Create(options.Board, buses, host, time), time, loggers.CreateLogger<Board.Sensors.SensorHub>());
        var decorators = new List<INodeDecorator> { devices, sensors };
        var monitor = new NodeMonitor(options, hostIp, runtime, observer, host, decorators, time, loggers.CreateLogger<NodeMonitor>())
        {
            SamplePeriod = options.NodeStatusUpdateFrequency,
        };
        Monitor = monitor;
        var usage = new UsageCollector(runtime, host, time, loggers.CreateLogger<UsageCollector>());
        var loops = new List<Task>
        {
            Watch("runtime relist", observer.RunAsync(stoppingToken)), Watch("node status", monitor.RunAsync(stoppingToken)),
            Watch("usage", usage.RunAsync(stoppingToken)), Watch("sensors", sensors.RunAsync(stoppingToken)),
        };
        if (options.PodManifestPath is { Length: > 0 } manifests)
        {
            var source = new StaticPodSource(manifests, options.NodeName, desired, time, loggers.CreateLogger<StaticPodSource>()) { Period = options.FileCheckFrequency };
            source.Scan();
            loops.Add(Watch("static pods", source.RunAsync(stoppingToken)));
            LogStaticPods(manifests);
        }
        else
        {
            desired.SetSource(StaticPodSource.SourceName, [], []);
        }

        MqttLink? link = null;
        if (options.Broker is { } broker)
        {
            link = new MqttLink(broker, options.NodeName, time, loggers.CreateLogger<MqttLink>()) { PodNetwork = options.CniConfDir is { Length: > 0 } };
            Link = link;
            var mqttSource = new MqttPodSource(options.NodeName, link.Topics, desired, loggers.CreateLogger<MqttPodSource>());
            link.MessageReceived += mqttSource.HandleAsync;
            var rpc = new RpcServer(link, options.NodeName, new ContainerLogs(desired, statuses, layout), loggers.CreateLogger<RpcServer>());
            link.MessageReceived += rpc.HandleAsync;
            _ = new StatusPublisher(link, options.NodeName, desired, statuses, time, loggers.CreateLogger<StatusPublisher>());
            var identify = new Board.Leds.IdentifyListener(link.Topics, options.NodeName, () => Leds, loggers.CreateLogger<Board.Leds.IdentifyListener>());
            link.MessageReceived += identify.HandleAsync;
            if (options.CniConfDir is { Length: > 0 } cniConfDir)
            {
                var network = new Network.PodNetwork(options.NodeName, link.Topics, cniConfDir, Path.Combine(options.StateDir, "cni", "networks"),
                    new Network.IpRouteBackend(), time, loggers.CreateLogger<Network.PodNetwork>());
                link.MessageReceived += network.HandleAsync;
                loops.Add(Watch("pod network", network.RunAsync(stoppingToken)));
            }

            var reporter = new NodeReporter(link, monitor, options.NodeName, time, loggers.CreateLogger<NodeReporter>())
            {
                LeaseDuration = options.NodeLeaseDuration,
                // The first report carries every sensor's first reading: the master drops the sensor keys a report lacks.
                ReadyToReport = sensors.FirstRound,
            };
            loops.Add(Watch("node reports", reporter.RunAsync(stoppingToken)));
            loops.Add(Watch("hang guard", HoldLinkWhileHungAsync(link, stoppingToken)));
            LogBroker(broker.Url.ToString());
        }

        var leds = StartLeds(buses, link, observer, monitor, desired, statuses);
        if (leds is not null)
        {
            loops.Add(Watch("LED board", leds.RunAsync(stoppingToken)));
        }

        if (link is not null)
        {
            // Connected once everything that handles its messages (the LED board for identify) is there.
            loops.Add(Watch("broker link", link.RunAsync(stoppingToken)));
        }

        // Every source has reported: what the runtime holds beyond this is an orphan.
        workers.EnableOrphanCleanup();

        ReadOnlyServer? server = null;
        if (options.ReadOnlyPort > 0)
        {
            server = new ReadOnlyServer(options.Address, options.ReadOnlyPort, desired, statuses, observer, time, loggers.CreateLogger<ReadOnlyServer>())
            {
                Monitor = monitor,
                Usage = usage,
                MetricWriters = [sensors.WriteMetrics],
            };
            loops.Add(Watch("read-only endpoint", server.RunAsync(stoppingToken)));
        }

        Started.TrySetResult();
        try
        {
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            await workers.WhenAllStopped().ConfigureAwait(false);
            leds?.Dispose();
            server?.Dispose();
            if (link is not null)
            {
                await link.DisposeAsync().ConfigureAwait(false);
            }

            LogStopped();
        }
    }

    /// <summary>
    /// A loop that dies on an error says so at once, in one line naming it: otherwise its fault would
    /// surface only when the agent stops and every loop is awaited.
    /// </summary>
    private Task Watch(string name, Task loop)
    {
        _ = loop.ContinueWith(
            t => LogLoopFailed(name, t.Exception!.GetBaseException().Message, t.Exception.GetBaseException()),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return loop;
    }

    /// <summary>
    /// How long the main loop may go without a turn before the agent counts as hung: one relist is two
    /// CRI calls, each with the runtime request deadline, and a handshake retry waits at most 10 s.
    /// The systemd watchdog and the broker link use the same.
    /// </summary>
    public static TimeSpan HangTolerance(AgentOptions options) => (2 * options.RuntimeRequestTimeout) + TimeSpan.FromSeconds(10);

    /// <summary>
    /// While the main loop does not turn, the broker link is held down: the master counts an open MQTT
    /// session as proof of life, so a hung agent must not keep one (the lease it would have stopped
    /// renewing is long). The link comes back when the loop turns again.
    /// </summary>
    private async Task HoldLinkWhileHungAsync(MqttLink link, CancellationToken cancellationToken)
    {
        var tolerance = HangTolerance(options);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!IsAlive(tolerance))
                {
                    await link.HoldAsync($"the agent's main loop has not turned for {tolerance.TotalSeconds:0} s", cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    link.Release();
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>The LED status board when the config names LEDs; null otherwise or when they cannot be opened (logged).</summary>
    private Board.Leds.LedBoard? StartLeds(Board.BoardBuses buses, MqttLink? link, RuntimeObserver observer, NodeMonitor monitor, DesiredPodStore desired, StatusManager statuses)
    {
        if (options.Board.Leds is not { } config)
        {
            return null;
        }

        var everConnected = false;
        if (link is not null)
        {
            link.Connected += () =>
            {
                everConnected = true;
                return Task.CompletedTask;
            };
        }

        Board.Leds.ILedOutput output;
        try
        {
            output = config.Red is not null || config.Amber is not null || config.Green is not null
                ? new Board.Leds.GpioLeds(buses.Gpio, config.Red, config.Amber, config.Green, config.ActiveLow ?? false)
                : new Board.Leds.ClassLeds(options.SysfsRoot, config.BoardLeds is { Count: > 0 } names ? names : ["ACT", "PWR"]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogLedsUnavailable(e.Message);
            return null;
        }

        var board = new Board.Leds.LedBoard(output, () => new Board.Leds.BoardInputs(
            observer.IsHealthy(TimeSpan.FromSeconds(30)),
            link is not null,
            everConnected,
            link?.IsConnected ?? false,
            [.. monitor.Current?.Status.Conditions ?? []],
            [.. desired.All().Select(d => statuses.Get(d.Uid)).OfType<k8s.Models.V1PodStatus>()]), time, loggers.CreateLogger<Board.Leds.LedBoard>());
        Leds = board;
        return board;
    }

    /// <summary>CRI version handshake; waits for a runtime that is not there yet, fails at once on one that speaks no CRI v1.</summary>
    private async Task<Cri.V1.VersionResponse> ConnectAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        string? lastError = null;
        while (true)
        {
            Interlocked.Exchange(ref _connectTurnTicks, time.GetUtcNow().UtcTicks);
            try
            {
                return runtime is CriRuntimeClient client
                    ? await client.HandshakeAsync(cancellationToken).ConfigureAwait(false)
                    : await runtime.VersionAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (CriHandshakeException e) when (e.Retriable)
            {
                if (e.Message != lastError)
                {
                    LogRuntimeUnavailable(e.Message);
                    lastError = e.Message;
                }

                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
    }

    [LoggerMessage(EventId = 6, Level = LogLevel.Error, Message = "LED board unavailable (board.leds): {Error}; running without it")]
    private partial void LogLedsUnavailable(string error);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Connected to {Runtime} {Version} (CRI {ApiVersion}) at {Socket}")]
    private partial void LogConnected(string runtime, string version, string apiVersion, string socket);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "{Error}; retrying")]
    private partial void LogRuntimeUnavailable(string error);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Watching static pod manifests in {Directory}")]
    private partial void LogStaticPods(string directory);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Pods from the master through broker {Url}")]
    private partial void LogBroker(string url);

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "The agent's {Loop} loop stopped on an error: {Error}; the rest of the agent runs on")]
    private partial void LogLoopFailed(string loop, string error, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Agent stopped; pods keep running")]
    private partial void LogStopped();
}

/// <summary>Facts about this machine the agent needs.</summary>
public static class NodeFacts
{
    public static long MemoryCapacityBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
        }

        return 0;
    }

    /// <summary>The first IPv4 address of an interface that is up and not loopback.</summary>
    public static string? PrimaryIPv4()
    {
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback)
            {
                continue;
            }

            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                if (address.Address.AddressFamily == AddressFamily.InterNetwork)
                {
                    return address.Address.ToString();
                }
            }
        }

        return null;
    }
}
