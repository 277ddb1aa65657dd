using System.CommandLine;
using EdgeKube.Agent.Check;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent;

/// <summary>edgekube-agent: a lightweight kubelet for ARM boards.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => BuildCommand().Parse(args).InvokeAsync();

    public static RootCommand BuildCommand()
    {
        var defaults = new AgentOptions();
        var nodeName = new Option<string>("--node-name") { Description = "Name of this node (default: hostname)", DefaultValueFactory = _ => defaults.NodeName };
        var manifests = new Option<string?>("--pod-manifest-path") { Description = "Directory of static pod manifests (YAML or JSON) to run" };
        var socket = new Option<string>("--containerd-socket") { Description = "containerd's CRI socket", DefaultValueFactory = _ => defaults.ContainerdSocket };
        var stateDir = new Option<string>("--state-dir") { Description = "Where desired pods, statuses and pod volumes are kept", DefaultValueFactory = _ => defaults.StateDir };
        var logsDir = new Option<string>("--pod-logs-dir") { Description = "Where container logs are written", DefaultValueFactory = _ => defaults.PodLogsDir };
        var address = new Option<string>("--address") { Description = "IP address the read-only endpoint listens on", DefaultValueFactory = _ => defaults.Address };
        var readOnlyPort = new Option<int>("--read-only-port") { Description = "Port of /healthz, /pods and /metrics (0 disables)", DefaultValueFactory = _ => defaults.ReadOnlyPort };
        var nodeIp = new Option<string?>("--node-ip") { Description = "IP address reported as the pods' hostIP (default: detected)" };
        var requestTimeout = new Option<int>("--runtime-request-timeout") { Description = "Deadline of each CRI call, in seconds", DefaultValueFactory = _ => (int)defaults.RuntimeRequestTimeout.TotalSeconds };
        var pullTimeout = new Option<int>("--image-pull-timeout") { Description = "Deadline of one image pull, in seconds", DefaultValueFactory = _ => (int)defaults.ImagePullTimeout.TotalSeconds };
        var fileCheck = new Option<double>("--file-check-frequency") { Description = "Seconds between checks of the static pod directory", DefaultValueFactory = _ => defaults.FileCheckFrequency.TotalSeconds };
        var cniConfDir = new Option<string>("--cni-conf-dir") { Description = "Where to write the CNI config for this node's pod CIDR (containerd's CNI conf_dir; empty: leave the pod network alone)", DefaultValueFactory = _ => defaults.CniConfDir };
        var statusFrequency = new Option<double>("--node-status-update-frequency") { Description = "Seconds between node status checks (the status is published when it changed)", DefaultValueFactory = _ => defaults.NodeStatusUpdateFrequency.TotalSeconds };
        var leaseDuration = new Option<int>("--node-lease-duration-seconds") { Description = "How long the master holds the node's lease while its MQTT session is open; renewed every quarter of it", DefaultValueFactory = _ => (int)defaults.NodeLeaseDuration.TotalSeconds };
        var config = new Option<string?>("--config") { Description = "Agent config file (the join config printed by `edgekube-master node add`)" };
        var maxPods = new Option<int>("--max-pods") { Description = "Number of pods this node can run", DefaultValueFactory = _ => defaults.MaxPods };
        var systemReserved = new Option<string?>("--system-reserved") { Description = "Resources reserved for the OS, e.g. cpu=100m,memory=100Mi,ephemeral-storage=1Gi" };
        var kubeReserved = new Option<string?>("--kube-reserved") { Description = "Resources reserved for the agent and containerd, e.g. cpu=100m,memory=100Mi" };
        var evictionHard = new Option<string>("--eviction-hard") { Description = "Hard eviction thresholds the pressure conditions use", DefaultValueFactory = _ => defaults.EvictionHard };
        var transition = new Option<double>("--eviction-pressure-transition-period") { Description = "Seconds a pressure condition stays after its signal clears", DefaultValueFactory = _ => defaults.EvictionPressureTransitionPeriod.TotalSeconds };
        var procfsRoot = new Option<string>("--procfs-root") { Description = "Where procfs is mounted", DefaultValueFactory = _ => defaults.ProcfsRoot };
        var sysfsRoot = new Option<string>("--sysfs-root") { Description = "Where sysfs is mounted (thermal zones, firmware flags, 1-wire, LEDs)", DefaultValueFactory = _ => defaults.SysfsRoot };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Trace, Debug, Information, Warning or Error", DefaultValueFactory = _ => LogLevel.Information };

        var root = new RootCommand("edgekube-agent: runs Kubernetes pods on this board through containerd's CRI")
        {
            config, nodeName, manifests, socket, stateDir, logsDir, address, readOnlyPort, nodeIp, requestTimeout, pullTimeout, fileCheck, cniConfDir, statusFrequency, leaseDuration, logLevel,
            maxPods, systemReserved, kubeReserved, evictionHard, transition, procfsRoot, sysfsRoot,
        };

        root.SetAction(async (result, cancellationToken) =>
        {
            JoinConfig file = new();
            if (result.GetValue(config) is { Length: > 0 } configPath)
            {
                try
                {
                    file = JoinConfig.Load(configPath);
                }
                catch (InvalidConfigException e)
                {
                    await Console.Error.WriteLineAsync("edgekube-agent: invalid setting " + e.Message).ConfigureAwait(false);
                    return 2;
                }
            }

            // A flag given on the command line wins over the config file, as with kubelet.
            T Pick<T>(Option<T> option, T? fromFile) =>
                fromFile is not null && result.GetResult(option) is null or { Implicit: true } ? fromFile : result.GetValue(option)!;

            var options = new AgentOptions
            {
                NodeName = Pick(nodeName, file.NodeName),
                PodManifestPath = Pick(manifests, file.PodManifestPath) is { Length: > 0 } m ? Path.GetFullPath(m) : null,
                ContainerdSocket = Pick(socket, file.ContainerdSocket),
                StateDir = Path.GetFullPath(Pick(stateDir, file.StateDir)),
                PodLogsDir = Path.GetFullPath(result.GetValue(logsDir)!),
                Address = result.GetValue(address)!,
                ReadOnlyPort = result.GetValue(readOnlyPort),
                NodeIp = Pick(nodeIp, file.NodeIp),
                Broker = file.ToBrokerOptions(),
                RuntimeRequestTimeout = TimeSpan.FromSeconds(result.GetValue(requestTimeout)),
                ImagePullTimeout = TimeSpan.FromSeconds(result.GetValue(pullTimeout)),
                FileCheckFrequency = TimeSpan.FromSeconds(result.GetValue(fileCheck)),
                CniConfDir = result.GetValue(cniConfDir) ?? string.Empty,
                NodeStatusUpdateFrequency = TimeSpan.FromSeconds(result.GetValue(statusFrequency)),
                NodeLeaseDuration = TimeSpan.FromSeconds(result.GetValue(leaseDuration)),
                MaxPods = result.GetValue(maxPods),
                SystemReserved = result.GetValue(systemReserved),
                KubeReserved = result.GetValue(kubeReserved),
                EvictionHard = result.GetValue(evictionHard)!,
                EvictionPressureTransitionPeriod = TimeSpan.FromSeconds(result.GetValue(transition)),
                ProcfsRoot = Path.GetFullPath(result.GetValue(procfsRoot)!),
                SysfsRoot = Path.GetFullPath(result.GetValue(sysfsRoot)!),
                Board = file.Board ?? new(),
            };
            return await RunAsync(options, result.GetValue(logLevel), cancellationToken).ConfigureAwait(false);
        });
        root.Subcommands.Add(BuildCheckCommand());
        return root;
    }

    /// <summary><c>edgekube-agent check</c>: the board's preflight; one line per check, exit 1 when any failed.</summary>
    private static Command BuildCheckCommand()
    {
        var defaults = new PreflightPaths();
        var socket = new Option<string>("--containerd-socket") { Description = "containerd's CRI socket", DefaultValueFactory = _ => defaults.ContainerdSocket };
        var cniBinDir = new Option<string[]>("--cni-bin-dir") { Description = "Where the CNI plugins are (repeatable; default /usr/lib/cni, then /opt/cni/bin)", AllowMultipleArgumentsPerToken = false };
        var checkRoot = new Option<string>("--root") { Description = "Look for /sys, /proc, /dev and /run/systemd under this directory (a mounted image, tests)", DefaultValueFactory = _ => "/" };
        var check = new Command("check", "Preflight on this board: memory cgroup, containerd speaking CRI v1, CNI plugins, I2C/GPIO devices, clock; each problem with how to fix it")
        {
            socket, cniBinDir, checkRoot,
        };
        check.SetAction(async (result, cancellationToken) =>
        {
            var paths = new PreflightPaths
            {
                ContainerdSocket = result.GetValue(socket)!,
                Root = result.GetValue(checkRoot)!,
                CniBinDirs = result.GetValue(cniBinDir) is { Length: > 0 } dirs ? dirs : defaults.CniBinDirs,
            };
            var results = await new Preflight(paths, TimeProvider.System).RunAsync(cancellationToken).ConfigureAwait(false);
            foreach (var line in results)
            {
                await Console.Out.WriteLineAsync(line.ToString()).ConfigureAwait(false);
            }

            var failed = results.Count(r => r.Outcome == CheckOutcome.Failed);
            var warned = results.Count(r => r.Outcome == CheckOutcome.Warning);
            await Console.Out.WriteLineAsync(failed > 0
                ? $"{failed} check(s) failed, {warned} warning(s): the agent will not run pods properly until the FAIL lines are fixed"
                : $"all checks passed ({warned} warning(s))").ConfigureAwait(false);
            return failed > 0 ? 1 : 0;
        });
        return check;
    }

    public static async Task<int> RunAsync(AgentOptions options, LogLevel logLevel, CancellationToken cancellationToken)
    {
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            foreach (var error in errors)
            {
                await Console.Error.WriteLineAsync("edgekube-agent: invalid setting " + error).ConfigureAwait(false);
            }

            return 2;
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.SetMinimumLevel(logLevel);
        if (Microsoft.Extensions.Hosting.Systemd.SystemdHelpers.IsSystemdService())
        {
            // Started by systemd: lines with syslog priorities (<6>...) for journald, which stamps the time itself.
            builder.Logging.AddSystemdConsole();
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        }

        // Not AddSystemd(): its lifetime says READY=1 as soon as the host starts, before the agent has
        // reached containerd, and sends no watchdog pings. SystemdNotifyService does both (NOTIFY_SOCKET).
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(sp => EdgeKube.Hosting.ServiceNotifier.FromEnvironment(sp.GetRequiredService<TimeProvider>()));
        builder.Services.AddSingleton<IContainerRuntime>(sp => new CriRuntimeClient(options.ContainerdSocket, options.RuntimeRequestTimeout, options.ImagePullTimeout, sp.GetRequiredService<ILogger<CriRuntimeClient>>()));
        builder.Services.AddSingleton<Hosting.Agent>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Hosting.Agent>());
        builder.Services.AddHostedService<SystemdNotifyService>();
        builder.Services.AddHostedService<StartupPagesService>();
        using var host = builder.Build();
        try
        {
            await host.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (CriHandshakeException e)
        {
            await Console.Error.WriteLineAsync("edgekube-agent: " + e.Message).ConfigureAwait(false);
            return 1;
        }

        return 0;
    }
}
