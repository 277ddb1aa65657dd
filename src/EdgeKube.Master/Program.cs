using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeKube.Broker;
using EdgeKube.Master.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master;

/// <summary>edgekube-master: the control plane the board fleet talks to.</summary>
public static partial class Program
{
    public static Task<int> Main(string[] args) => BuildCommand().Parse(args).InvokeAsync();

    public static RootCommand BuildCommand()
    {
        var defaults = new MasterOptions();
        var dataDir = new Option<string>("--data-dir") { Description = "Where the master keeps its state, PKI, credentials and admin.kubeconfig", DefaultValueFactory = _ => defaults.DataDir, Recursive = true };
        var apiListen = new Option<string>("--api-listen") { Description = "API server address:port", DefaultValueFactory = _ => "127.0.0.1:6443" };
        var mqttListen = new Option<string>("--mqtt-listen") { Description = "Embedded MQTT broker address:port", DefaultValueFactory = _ => "127.0.0.1:1883" };
        var mqttTlsListen = new Option<string?>("--mqtt-tls-listen") { Description = "Also serve MQTT over TLS (mqtts) on address:port, e.g. 0.0.0.0:8883, with the master's CA; join configs then use mqtts" };
        var broker = new Option<string?>("--broker") { Description = "Use this external broker (mqtt://host:port or mqtts://host:port) instead of the embedded one" };
        var brokerCa = new Option<string?>("--broker-ca-file") { Description = "PEM file of the CA that signed the external mqtts broker's certificate (default: the system store)" };
        var prefix = new Option<string>("--topic-prefix") { Description = "MQTT topic prefix", DefaultValueFactory = _ => defaults.TopicPrefix };
        var grace = new Option<double>("--node-monitor-grace-period") { Description = "Seconds a node may be silent before it is NotReady", DefaultValueFactory = _ => defaults.NodeMonitorGracePeriod.TotalSeconds };
        var clusterCidr = new Option<string>("--cluster-cidr") { Description = "The pod network: each node gets a subnet of it", DefaultValueFactory = _ => defaults.ClusterCidr };
        var nodeMask = new Option<int>("--node-cidr-mask-size") { Description = "Prefix length of each node's pod subnet", DefaultValueFactory = _ => defaults.NodeCidrMaskSize };
        var advertise = new Option<string?>("--advertise-address") { Description = "Broker address written into join configs" };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Trace, Debug, Information, Warning or Error", DefaultValueFactory = _ => LogLevel.Information };

        var root = new RootCommand("edgekube-master: the control plane of an EdgeKube fleet (API server for kubectl, scheduler, MQTT broker and bridge)")
        {
            dataDir, apiListen, mqttListen, mqttTlsListen, broker, brokerCa, prefix, grace, clusterCidr, nodeMask, advertise, logLevel,
        };
        root.SetAction(async (result, cancellationToken) =>
        {
            var errors = new List<string>();
            var options = new MasterOptions
            {
                DataDir = Path.GetFullPath(result.GetValue(dataDir)!),
                ApiListen = ParseEndpoint(result.GetValue(apiListen)!, "--api-listen", errors),
                MqttListen = ParseEndpoint(result.GetValue(mqttListen)!, "--mqtt-listen", errors),
                MqttTlsListen = result.GetValue(mqttTlsListen) is { } tlsText ? ParseEndpoint(tlsText, "--mqtt-tls-listen", errors) : null,
                Broker = ParseBroker(result.GetValue(broker), errors),
                BrokerCaFile = result.GetValue(brokerCa) is { } caFile ? Path.GetFullPath(caFile) : null,
                TopicPrefix = result.GetValue(prefix)!,
                NodeMonitorGracePeriod = TimeSpan.FromSeconds(result.GetValue(grace)),
                AdvertiseAddress = result.GetValue(advertise),
                ClusterCidr = result.GetValue(clusterCidr)!,
                NodeCidrMaskSize = result.GetValue(nodeMask),
            };
            try
            {
                _ = new Networking.PodCidrAllocator(options.ClusterCidr, options.NodeCidrMaskSize);
            }
            catch (ArgumentException e)
            {
                errors.Add($"--cluster-cidr / --node-cidr-mask-size: {e.Message.Split(" (Parameter", 2)[0]}");
            }

            if (options.NodeMonitorGracePeriod <= TimeSpan.Zero)
            {
                errors.Add("--node-monitor-grace-period: must be positive");
            }

            if (options.BrokerCaFile is { } ca && !IsPemCertificate(ca))
            {
                errors.Add($"--broker-ca-file: \"{ca}\" is not a readable PEM certificate");
            }

            if (options.Broker is not null && options.MqttTlsListen is not null)
            {
                errors.Add("--mqtt-tls-listen: the embedded broker is not used with --broker");
            }

            if (errors.Count > 0)
            {
                foreach (var e in errors)
                {
                    await Console.Error.WriteLineAsync("edgekube-master: invalid setting " + e).ConfigureAwait(false);
                }

                return 2;
            }

            using var loggers = LoggerFactory.Create(b =>
            {
                b.SetMinimumLevel(result.GetValue(logLevel));
                b.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                    o.UseUtcTimestamp = true;
                });
            });
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                stop.Cancel();
            });
            var notifier = EdgeKube.Hosting.ServiceNotifier.FromEnvironment(TimeProvider.System);
            var master = new MasterHost(options, loggers, TimeProvider.System);
            using var stopping = stop.Token.Register(notifier.Stopping);
            var run = master.RunAsync(stop.Token);
            // READY=1 once it serves; WATCHDOG=1 while the process still schedules work and the master runs (Type=notify, WatchdogSec= in systemd/edgekube-master.service).
            _ = master.Ready.Task.ContinueWith(_ => notifier.Ready("serving"), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            var watchdog = notifier.RunWatchdogAsync(() => !run.IsCompleted, null, stop.Token);
            try
            {
                await run.ConfigureAwait(false);
            }
            catch (IOException e) when (e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) || e.InnerException is System.Net.Sockets.SocketException)
            {
                await Console.Error.WriteLineAsync("edgekube-master: " + e.Message + " (--api-listen / --mqtt-listen)").ConfigureAwait(false);
                return 1;
            }
            finally
            {
                await stop.CancelAsync().ConfigureAwait(false);
                await watchdog.ConfigureAwait(false);
            }

            return 0;
        });

        var nodeName = new Argument<string>("NAME") { Description = "The node's name (lower-case RFC 1123)" };
        var brokerUrl = new Option<string?>("--broker-url") { Description = "Broker URL to put into the join config (default: the running master's)" };
        var add = new Command("add", "Create the node's MQTT credentials and print its join config (YAML for edgekube-agent --config)") { nodeName, brokerUrl };
        add.SetAction(result =>
        {
            var name = result.GetValue(nodeName)!;
            if (!NodeNameRegex().IsMatch(name) || name.Length > 253)
            {
                Console.Error.WriteLine($"edgekube-master: invalid node name \"{name}\" (lower-case RFC 1123 subdomain)");
                return 2;
            }

            var dir = Path.GetFullPath(result.GetValue(dataDir)!);
            var info = ReadInfo(dir);
            var url = result.GetValue(brokerUrl) ?? info?.BrokerUrl ?? "mqtt://127.0.0.1:1883";
            var credentials = new CredentialStore(dir);
            var password = credentials.Create(name);
            // For mqtts, the CA that signed the broker's certificate: the node trusts exactly that.
            var caData = url.StartsWith("mqtts://", StringComparison.Ordinal) && info?.BrokerCaPem is { Length: > 0 } caPem
                ? $"\n  caData: {Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(caPem))}"
                : "";
            Console.Out.Write($"""
                # Join config for node {name}: copy to the board as /etc/edgekube/agent.yaml, then run edgekube-agent --config /etc/edgekube/agent.yaml
                apiVersion: edgekube.io/v1
                kind: AgentConfig
                nodeName: {name}
                broker:
                  url: {url}
                  username: {name}
                  password: {password}
                  topicPrefix: {info?.TopicPrefix ?? defaults.TopicPrefix}{caData}

                """);
            return 0;
        });
        var remove = new Command("remove", "Revoke the node's MQTT credentials (its sessions are closed)") { nodeName };
        remove.SetAction(result =>
        {
            var name = result.GetValue(nodeName)!;
            var credentials = new CredentialStore(Path.GetFullPath(result.GetValue(dataDir)!));
            if (!credentials.Remove(name))
            {
                Console.Error.WriteLine($"edgekube-master: node \"{name}\" has no credentials");
                return 1;
            }

            Console.Out.WriteLine($"node {name}: credentials revoked");
            return 0;
        });
        var identifyFor = new Option<string>("--for") { Description = "How long the LEDs flash: a Go duration such as 30s or 2m", DefaultValueFactory = _ => "30s" };
        var identifyStop = new Option<bool>("--stop") { Description = "Stop an identify that is running" };
        var identify = new Command("identify", "Flash the node's LEDs so a person finds the board (sets the edgekube.io/identify annotation through the running master's API)") { nodeName, identifyFor, identifyStop };
        identify.SetAction(async (result, cancellationToken) =>
        {
            var name = result.GetValue(nodeName)!;
            var duration = result.GetValue(identifyFor)!;
            var stop = result.GetValue(identifyStop);
            if (!stop && Controllers.IdentifyController.Parse(duration) is null)
            {
                await Console.Error.WriteLineAsync($"edgekube-master: invalid setting --for: \"{duration}\" is not a duration between 1ms and 24h such as 30s or 2m").ConfigureAwait(false);
                return 2;
            }

            using var api = AdminApiClient.Open(Path.GetFullPath(result.GetValue(dataDir)!), out var error);
            if (api is null)
            {
                await Console.Error.WriteLineAsync("edgekube-master: " + error).ConfigureAwait(false);
                return 1;
            }

            // Clearing the end stamp makes the master start afresh even when the duration is the one already set.
            var value = stop ? "null" : JsonSerializer.Serialize(duration, MasterJson.Default.String);
            var patch = "{\"metadata\":{\"annotations\":{\"" + Protocol.NodeKeys.Identify + "\":" + value + ",\"" + Protocol.NodeKeys.IdentifyUntil + "\":null}}}";
            try
            {
                var (status, body) = await api.MergePatchAsync("/api/v1/nodes/" + Uri.EscapeDataString(name), patch, cancellationToken).ConfigureAwait(false);
                if (status == 404)
                {
                    await Console.Error.WriteLineAsync($"edgekube-master: node \"{name}\" not found").ConfigureAwait(false);
                    return 1;
                }

                if (status is < 200 or > 299)
                {
                    await Console.Error.WriteLineAsync($"edgekube-master: the API server answered {status}: {body}").ConfigureAwait(false);
                    return 1;
                }
            }
            catch (HttpRequestException e)
            {
                await Console.Error.WriteLineAsync($"edgekube-master: cannot reach the master's API server: {e.Message}").ConfigureAwait(false);
                return 1;
            }

            await Console.Out.WriteLineAsync(stop ? $"node {name}: identify stopped" : $"node {name}: LEDs flash for {duration}").ConfigureAwait(false);
            return 0;
        });
        root.Subcommands.Add(new Command("node", "Manage node credentials; identify a node") { add, remove, identify });

        var mosquitto = new Option<string>("--mosquitto") { Description = "Directory to write mosquitto's password, ACL and config files into", Required = true };
        var mqttPort = new Option<int>("--port") { Description = "Port mosquitto listens on", DefaultValueFactory = _ => 1883 };
        var bind = new Option<string>("--bind-address") { Description = "Address mosquitto listens on", DefaultValueFactory = _ => "127.0.0.1" };
        var runAs = new Option<string?>("--user") { Description = "mosquitto's user setting (the user it drops to; it must be able to read the files). Default: mosquitto's own" };
        var brokerConfig = new Command("broker-config", "Write the password and ACL files for an external mosquitto with the same rules as the embedded broker") { mosquitto, mqttPort, bind, prefix, runAs };
        brokerConfig.SetAction(result =>
        {
            var dir = Path.GetFullPath(result.GetValue(dataDir)!);
            var credentials = new CredentialStore(dir);
            Hosting.MasterHost.MasterMqttPassword(dir, credentials);
            var written = MosquittoConfig.Write(Path.GetFullPath(result.GetValue(mosquitto)!), credentials, new NodeAcl(result.GetValue(prefix)!), result.GetValue(mqttPort), result.GetValue(bind)!, result.GetValue(runAs));
            foreach (var file in written)
            {
                Console.Out.WriteLine(file);
            }

            return 0;
        });
        root.Subcommands.Add(brokerConfig);
        return root;
    }

    private static MasterInfo? ReadInfo(string dataDir)
    {
        var path = Path.Combine(dataDir, MasterHost.MasterInfoFile);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), MasterJson.Default.MasterInfo) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static bool IsPemCertificate(string path)
    {
        try
        {
            using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(path));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            return false;
        }
    }

    private static IPEndPoint ParseEndpoint(string text, string flag, List<string> errors)
    {
        if (IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port > 0)
        {
            return endpoint;
        }

        errors.Add($"{flag}: \"{text}\" is not address:port");
        return new IPEndPoint(IPAddress.Loopback, 0);
    }

    private static Uri? ParseBroker(string? text, List<string> errors)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "mqtt" or "mqtts")
        {
            return uri;
        }

        errors.Add($"--broker: \"{text}\" must be mqtt://host:port or mqtts://host:port");
        return null;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex NodeNameRegex();
}
