using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeKube.Broker;
using EdgeKube.Master.Api;
using EdgeKube.Master.Bridge;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Controllers.Workloads;
using EdgeKube.Master.Networking;
using EdgeKube.Master.Security;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Hosting;

/// <summary>The master's settings; flag names as in the README and issue 3.</summary>
public sealed record MasterOptions
{
    /// <summary><c>--data-dir</c>: the object store, PKI, credentials, admin kubeconfig.</summary>
    public string DataDir { get; init; } = "/var/lib/edgekube-master";

    /// <summary><c>--api-listen</c>: the API server's address and port (loopback unless configured).</summary>
    public IPEndPoint ApiListen { get; init; } = new(IPAddress.Loopback, 6443);

    /// <summary><c>--mqtt-listen</c>: the embedded broker's address and port.</summary>
    public IPEndPoint MqttListen { get; init; } = new(IPAddress.Loopback, 1883);

    /// <summary><c>--mqtt-tls-listen</c>: the embedded broker's MQTT-over-TLS address and port (off unless set); join configs then use mqtts.</summary>
    public IPEndPoint? MqttTlsListen { get; init; }

    /// <summary><c>--broker</c>: an external broker instead of the embedded one (mqtt:// or mqtts://).</summary>
    public Uri? Broker { get; init; }

    /// <summary><c>--broker-ca-file</c>: the CA (PEM) that signed an external mqtts broker's certificate; the system store when unset.</summary>
    public string? BrokerCaFile { get; init; }

    /// <summary><c>--topic-prefix</c>.</summary>
    public string TopicPrefix { get; init; } = Topics.DefaultPrefix;

    /// <summary><c>--node-monitor-grace-period</c>: how long a silent node stays Ready.</summary>
    public TimeSpan NodeMonitorGracePeriod { get; init; } = TimeSpan.FromSeconds(40);

    /// <summary><c>--cluster-cidr</c>: the pod network; each node gets a subnet of it.</summary>
    public string ClusterCidr { get; init; } = "10.244.0.0/16";

    /// <summary><c>--node-cidr-mask-size</c>: the size of each node's pod subnet (/24: 254 pods).</summary>
    public int NodeCidrMaskSize { get; init; } = 24;

    /// <summary><c>--advertise-address</c>: the broker address put into join configs (default: the MQTT listen address, or this machine's address when that is 0.0.0.0).</summary>
    public string? AdvertiseAddress { get; init; }
}

/// <summary>What a running master records for its CLI (<c>node add</c> prints the broker URL from it).</summary>
public sealed record MasterInfo(string ApiUrl, string BrokerUrl, string TopicPrefix)
{
    /// <summary>PEM of the CA that signed the broker's certificate, for mqtts join configs.</summary>
    public string? BrokerCaPem { get; init; }
}

/// <summary>Starts and runs everything the master is: store, PKI, broker, bridge, API server, controllers.</summary>
public sealed partial class MasterHost(MasterOptions options, ILoggerFactory loggers, TimeProvider time)
{
    public const string MasterInfoFile = "master.json";
    private readonly ILogger<MasterHost> _logger = loggers.CreateLogger<MasterHost>();

    /// <summary>Completed once the API server, broker and bridge are up (the master then says READY=1 to systemd).</summary>
    public TaskCompletionSource Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.DataDir);
        await using var store = await SqliteObjectStore.OpenAsync(Path.Combine(options.DataDir, "state.db"), time, cancellationToken).ConfigureAwait(false);
        await EnsureNamespacesAsync(store, cancellationToken).ConfigureAwait(false);

        var pki = MasterPki.LoadOrCreate(options.DataDir, HostNames(), Addresses(), time);
        var admin = AdminCredentials.LoadOrCreate(options.DataDir);
        var credentials = new CredentialStore(options.DataDir);
        var masterPassword = MasterMqttPassword(options.DataDir, credentials);

        EmbeddedBroker? broker = null;
        Uri brokerUrl;
        if (options.Broker is { } external)
        {
            brokerUrl = external;
        }
        else
        {
            broker = new EmbeddedBroker(options.MqttListen, credentials, new NodeAcl(options.TopicPrefix), loggers.CreateLogger<EmbeddedBroker>(),
                options.MqttTlsListen, options.MqttTlsListen is null ? null : pki.Server);
            await broker.StartAsync().ConfigureAwait(false);
            var host = options.MqttListen.Address.Equals(IPAddress.Any) ? "127.0.0.1" : options.MqttListen.Address.ToString();
            brokerUrl = new Uri($"mqtt://{host}:{options.MqttListen.Port}");
            LogBroker(options.MqttListen.ToString());
            if (options.MqttTlsListen is { } tls)
            {
                LogBrokerTls(tls.ToString());
            }
        }

        var brokerCa = options.Broker is not null && options.BrokerCaFile is { } caFile ? File.ReadAllText(caFile) : null;
        await using var bridge = new MqttBridge(new BridgeOptions(brokerUrl, NodeAcl.MasterUser, masterPassword, options.TopicPrefix) { CaPem = brokerCa, ClusterCidr = options.ClusterCidr }, store, time, loggers.CreateLogger<MqttBridge>());
        await using var api = new ApiServer(store, admin, pki, options.ApiListen, bridge, time, loggers)
        {
            Metrics = new MasterMetrics(store, () => bridge.IsConnected),
        };
        await api.StartAsync(cancellationToken).ConfigureAwait(false);
        var kubeconfig = admin.WriteKubeconfig(options.DataDir, api.Url, pki.CaPem);

        var advertised = options.AdvertiseAddress
            ?? (options.MqttListen.Address.Equals(IPAddress.Any) ? NodeAddress() : options.MqttListen.Address.ToString());
        var advertisedTls = options.AdvertiseAddress
            ?? (options.MqttTlsListen?.Address.Equals(IPAddress.Any) == true ? NodeAddress() : options.MqttTlsListen?.Address.ToString());
        var joinBroker = options.Broker?.ToString().TrimEnd('/')
            ?? (options.MqttTlsListen is { } tlsListen ? $"mqtts://{advertisedTls}:{tlsListen.Port}" : $"mqtt://{advertised}:{options.MqttListen.Port}");
        // The CA a node needs to trust the broker: ours for the embedded broker, the given one for an external broker.
        var joinCa = options.Broker is null ? (options.MqttTlsListen is null ? null : pki.CaPem) : brokerCa;
        MasterPki.WriteSecret(Path.Combine(options.DataDir, MasterInfoFile),
            JsonSerializer.Serialize(new MasterInfo(api.Url, joinBroker, options.TopicPrefix) { BrokerCaPem = joinCa }, MasterJson.Default.MasterInfo));
        LogReady(api.Url, kubeconfig);
        Ready.TrySetResult();

        var events = new EventRecorder(store, time);
        // One list and watch of the pods, by node, for every controller that looks at some nodes' pods.
        var podIndex = new PodNodeIndex(store, loggers.CreateLogger<PodNodeIndex>());
        var scheduling = new SchedulingController(store, podIndex, events, time, loggers.CreateLogger<SchedulingController>());
        var lifecycle = new NodeLifecycleController(store, podIndex, () => bridge.Liveness, events, options.NodeMonitorGracePeriod, time, loggers.CreateLogger<NodeLifecycleController>());
        bridge.NodeChanged += lifecycle.Kick;
        var namespaces = new NamespaceController(store, api, loggers.CreateLogger<NamespaceController>());
        var writer = new ObjectWriter(store, time);
        var pods = ApiResources.All.First(r => r.Kind == "Pod");
        var eviction = new TaintEvictionController(store, podIndex, (pod, ct) => api.DeleteObjectAsync(pods, pod, null, ct), events, time, loggers.CreateLogger<TaintEvictionController>());
        var identify = new IdentifyController(store, events, time, loggers.CreateLogger<IdentifyController>());
        var ipam = new NodeIpamController(store, options.ClusterCidr, options.NodeCidrMaskSize, events, loggers.CreateLogger<NodeIpamController>());

        var loops = new List<Task>
        {
            bridge.RunAsync(cancellationToken),
            scheduling.RunAsync(cancellationToken),
            podIndex.RunAsync(cancellationToken),
            lifecycle.RunAsync(cancellationToken),
            namespaces.RunAsync(cancellationToken),
            new ReplicaSetController(writer, events, loggers.CreateLogger<ReplicaSetController>()).RunAsync(cancellationToken),
            new DeploymentController(writer, events, loggers.CreateLogger<DeploymentController>()).RunAsync(cancellationToken),
            new DaemonSetController(writer, events, loggers.CreateLogger<DaemonSetController>()).RunAsync(cancellationToken),
            new JobController(writer, events, loggers.CreateLogger<JobController>()).RunAsync(cancellationToken),
            new GarbageCollector(writer, loggers.CreateLogger<GarbageCollector>()).RunAsync(cancellationToken),
            ipam.RunAsync(cancellationToken),
            identify.RunAsync(cancellationToken),
            eviction.RunAsync(cancellationToken),
            WatchCredentialsAsync(credentials, broker, store, cancellationToken),
        };
        try
        {
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (broker is not null)
            {
                await broker.DisposeAsync().ConfigureAwait(false);
            }

            LogStopped();
        }
    }

    /// <summary>
    /// <c>node add</c> / <c>node remove</c> run as other processes: pick up their changes, end the sessions
    /// of revoked nodes, and delete the Node of a removed one (which frees its pod CIDR and its routes).
    /// </summary>
    private async Task WatchCredentialsAsync(CredentialStore credentials, EmbeddedBroker? broker, IObjectStore store, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, cancellationToken).ConfigureAwait(false);
                foreach (var user in credentials.ReloadIfChanged())
                {
                    LogRevoked(user);
                    if (broker is not null)
                    {
                        await broker.DisconnectUserAsync(user).ConfigureAwait(false);
                    }

                    if (!credentials.Exists(user) && user != NodeAcl.MasterUser)
                    {
                        try
                        {
                            await store.DeleteAsync(new ObjectKey("nodes", string.Empty, user), null, cancellationToken).ConfigureAwait(false);
                            LogNodeDeleted(user);
                        }
                        catch (StoreException e) when (e.Kind == StoreErrorKind.NotFound)
                        {
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is IOException or JsonException or InvalidDataException)
            {
                LogCredentialsUnreadable(e.Message);
            }
        }
    }

    private static async Task EnsureNamespacesAsync(IObjectStore store, CancellationToken cancellationToken)
    {
        foreach (var name in new[] { "default", "kube-system", "kube-public", "kube-node-lease" })
        {
            var key = new ObjectKey("namespaces", string.Empty, name);
            if (await store.GetAsync(key, cancellationToken).ConfigureAwait(false) is not null)
            {
                continue;
            }

            await store.CreateAsync(key, new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Namespace",
                ["metadata"] = new JsonObject
                {
                    ["name"] = name,
                    ["uid"] = Guid.NewGuid().ToString(),
                    ["creationTimestamp"] = ObjectMeta.Time(DateTimeOffset.UtcNow),
                    ["labels"] = new JsonObject { ["kubernetes.io/metadata.name"] = name },
                },
                ["spec"] = new JsonObject { ["finalizers"] = new JsonArray("kubernetes") },
                ["status"] = new JsonObject { ["phase"] = "Active" },
            }, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The master's own MQTT password, kept in the data dir and (re)registered in the credential store.</summary>
    public static string MasterMqttPassword(string dataDir, CredentialStore credentials)
    {
        var path = Path.Combine(dataDir, "mqtt-master.password");
        string password;
        if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } existing)
        {
            password = existing;
        }
        else
        {
            password = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
            MasterPki.WriteSecret(path, password + "\n");
        }

        if (!credentials.Verify(NodeAcl.MasterUser, password))
        {
            credentials.SetPassword(NodeAcl.MasterUser, password);
        }

        return password;
    }

    private List<string> HostNames()
    {
        var names = new List<string> { "localhost", "kubernetes", "kubernetes.default", "edgekube-master" };
        var host = Dns.GetHostName();
        if (!names.Contains(host))
        {
            names.Add(host);
        }

        return names;
    }

    private List<IPAddress> Addresses()
    {
        var addresses = new List<IPAddress> { IPAddress.Loopback };
        if (!options.ApiListen.Address.Equals(IPAddress.Any) && !options.ApiListen.Address.Equals(IPAddress.Loopback))
        {
            addresses.Add(options.ApiListen.Address);
        }

        if (options.ApiListen.Address.Equals(IPAddress.Any) && NodeAddress() is { } ip && IPAddress.TryParse(ip, out var parsed))
        {
            addresses.Add(parsed);
        }

        return addresses;
    }

    private static string NodeAddress()
    {
        foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != System.Net.NetworkInformation.OperationalStatus.Up || nic.NetworkInterfaceType == System.Net.NetworkInformation.NetworkInterfaceType.Loopback)
            {
                continue;
            }

            foreach (var a in nic.GetIPProperties().UnicastAddresses)
            {
                if (a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                {
                    return a.Address.ToString();
                }
            }
        }

        return "127.0.0.1";
    }

    [LoggerMessage(EventId = 6000, Level = LogLevel.Information, Message = "Embedded MQTT broker listening on {Endpoint}")]
    private partial void LogBroker(string endpoint);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Information, Message = "Embedded MQTT broker listening for TLS (mqtts) on {Endpoint}")]
    private partial void LogBrokerTls(string endpoint);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Master ready: API {Url}; kubectl --kubeconfig {Kubeconfig}")]
    private partial void LogReady(string url, string kubeconfig);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "MQTT credentials of {User} revoked: its sessions are closed")]
    private partial void LogRevoked(string user);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Information, Message = "Node {Node} removed: its credentials were revoked (node remove)")]
    private partial void LogNodeDeleted(string node);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Error, Message = "Cannot read the MQTT credentials: {Error}")]
    private partial void LogCredentialsUnreadable(string error);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Information, Message = "Master stopped")]
    private partial void LogStopped();
}

[System.Text.Json.Serialization.JsonSerializable(typeof(MasterInfo))]
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class MasterJson : System.Text.Json.Serialization.JsonSerializerContext;
