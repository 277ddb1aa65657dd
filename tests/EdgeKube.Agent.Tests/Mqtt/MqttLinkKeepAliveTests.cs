using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Tests.Integration;
using EdgeKube.Broker;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;

namespace EdgeKube.Agent.Tests.Mqtt;

/// <summary>
/// The link's own MQTT keepalive (MQTTnet's loop is off, see KeepAliveChannel), through a real broker: the
/// embedded one and mosquitto. The broker must hold the link to the keepalive it asked for, the link must
/// ping when idle, and each side must notice a silent cut.
/// </summary>
public abstract class MqttLinkKeepAliveTests : IAsyncLifetime
{
    private const string Node = "board-1";
    private readonly LinkRunner _links = new();
    private IMqttClient? _observer;

    protected string DataDir { get; } = Directory.CreateTempSubdirectory("edgekube-keepalive-").FullName;

    protected CredentialStore Credentials { get; private set; } = null!;

    protected int Port { get; } = AgentProcess.FreePort();

    private string _nodePassword = string.Empty;

    /// <summary>Presence payloads seen by a master-side observer, in order.</summary>
    private readonly ConcurrentQueue<string> _presence = new();

    public async Task InitializeAsync()
    {
        Credentials = new CredentialStore(DataDir);
        var masterPassword = Credentials.Create(NodeAcl.MasterUser);
        _nodePassword = Credentials.Create(Node);
        await StartBrokerAsync();

        _observer = new MqttClientFactory().CreateMqttClient();
        _observer.ApplicationMessageReceivedAsync += e =>
        {
            _presence.Enqueue(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };
        await _observer.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials(NodeAcl.MasterUser, masterPassword).WithClientId("keepalive-observer").Build());
        await _observer.SubscribeAsync($"edgekube/v1/nodes/{Node}/presence");
    }

    protected abstract Task StartBrokerAsync();

    protected abstract Task StopBrokerAsync();

    // Nothing is published: only pings keep the session (one every 3 s idle). Without them the broker drops it
    // after 4.5 s. A keepalive of 3 s, not less: the link waits half a keepalive for the broker's answer and the
    // broker half a keepalive past the ping's due time, and with 1 s a CI machine busy with the other test
    // assemblies once stalled the link past 0.5 s (a second connect).
    [Fact]
    public Task An_idle_link_pings_and_the_broker_keeps_it() => StaysConnectedWhileIdleAsync(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10), 2, 4);

    /// <summary>Connects with <paramref name="keepAlive"/>, sends nothing for <paramref name="idle"/>, and holds the first session with pings in the range.</summary>
    protected async Task StaysConnectedWhileIdleAsync(TimeSpan keepAlive, TimeSpan idle, int minPings, int maxPings)
    {
        var link = Start(Port, keepAlive);
        await WaitConnectedAsync(link);
        await Task.Delay(idle);
        Assert.True(link.IsConnected);
        Assert.Equal(1, link.Connects);
        Assert.InRange(link.Pings, minPings, maxPings);
    }

    [Fact]
    public async Task A_silent_cut_is_seen_by_the_broker_within_one_and_a_half_keepalives_and_by_the_link()
    {
        await using var proxy = new SilenceableProxy(Port);
        var link = Start(proxy.Port, TimeSpan.FromSeconds(2));
        await WaitConnectedAsync(link);
        await Eventually.Until(() => Task.FromResult(_presence.LastOrDefault() == "online"), TimeSpan.FromSeconds(10), () => "no online presence");

        // The cable is cut: TCP stays up on both sides, nothing gets through. The broker only knows from the
        // keepalive that the CONNECT carried (2 s: the will after 3 s); with none it would wait forever.
        var cut = Stopwatch.StartNew();
        proxy.Silence();
        await Eventually.Until(() => Task.FromResult(_presence.LastOrDefault() == "offline"), TimeSpan.FromSeconds(10),
            () => $"the broker never published the will; presence: {string.Join(", ", _presence)}");
        Assert.InRange(cut.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));

        // The link's ping went unanswered, so it dropped the connection and is trying again.
        await Eventually.Until(() => Task.FromResult(!link.IsConnected), TimeSpan.FromSeconds(10), () => "the link never noticed the cut");

        proxy.Restore();
        await Eventually.Until(() => Task.FromResult(link.IsConnected && link.Connects == 2 && _presence.LastOrDefault() == "online"), TimeSpan.FromSeconds(30),
            () => $"the link did not come back: connects {link.Connects}, presence {string.Join(", ", _presence)}");
    }

    protected MqttLink Start(int port, TimeSpan keepAlive)
    {
        var link = new MqttLink(new BrokerOptions { Url = new Uri($"mqtt://127.0.0.1:{port}"), Username = Node, Password = _nodePassword, KeepAlive = keepAlive },
            Node, TimeProvider.System, NullLogger<MqttLink>.Instance) { PodNetwork = false };
        return _links.Run(link);
    }

    protected static Task WaitConnectedAsync(MqttLink link) =>
        Eventually.Until(() => Task.FromResult(link.IsConnected && link.Connects == 1), TimeSpan.FromSeconds(15), () => "the link never connected");

    public async Task DisposeAsync()
    {
        await _links.DisposeAsync();
        _observer?.Dispose();
        await StopBrokerAsync();
        Directory.Delete(DataDir, recursive: true);
    }
}

public sealed class EmbeddedBrokerKeepAliveTests : MqttLinkKeepAliveTests
{
    private EmbeddedBroker? _broker;

    protected override Task StartBrokerAsync()
    {
        _broker = new EmbeddedBroker(new IPEndPoint(IPAddress.Loopback, Port), Credentials, new NodeAcl(), NullLogger.Instance);
        return _broker.StartAsync();
    }

    protected override async Task StopBrokerAsync()
    {
        if (_broker is not null)
        {
            await _broker.DisposeAsync();
        }
    }
}

public sealed class MosquittoKeepAliveTests : MqttLinkKeepAliveTests
{
    /// <summary>
    /// mosquitto's max_keepalive (10 s is the least it takes): an MQTT 5 client asking for more is told this in
    /// the CONNACK's Server Keep Alive. The other tests ask for less and are not affected.
    /// </summary>
    private const int MaxKeepAlive = 10;

    private MosquittoProcess? _mosquitto;

    protected override async Task StartBrokerAsync()
    {
        var files = MosquittoConfig.Write(Path.Combine(DataDir, "mosquitto"), Credentials, new NodeAcl(), Port, runAsUser: "root");
        var conf = files.Single(f => f.EndsWith(".conf", StringComparison.Ordinal));
        File.AppendAllText(conf, $"max_keepalive {MaxKeepAlive}\n");
        _mosquitto = new MosquittoProcess(Port);
        await _mosquitto.StartAsync(conf);
    }

    protected override async Task StopBrokerAsync()
    {
        if (_mosquitto is not null)
        {
            await _mosquitto.StopAsync();
        }
    }

    // The link asks for 60 s; mosquitto answers with a Server Keep Alive of 10 s, which the client must use
    // (MQTT 5, 3.2.2.3.14). Pinging every 60 s, it would be dropped after 15 s.
    [Fact]
    public Task The_brokers_server_keep_alive_replaces_the_links_own() => StaysConnectedWhileIdleAsync(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(17), 1, 2);
}

/// <summary>A TCP relay that can go silent, as a cut cable: both connections stay open and nothing gets through.</summary>
internal sealed class SilenceableProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _sockets = [];
    private volatile bool _silent;

    public SilenceableProxy(int target)
    {
        _target = target;
        _listener.Start();
        _ = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public void Silence() => _silent = true;

    /// <summary>Lets traffic through again; the connections made before are closed (their streams are cut mid-packet).</summary>
    public void Restore()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        _sockets.Clear();
        _silent = false;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var upstream = new TcpClient();
                await upstream.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
                _sockets.Add(client);
                _sockets.Add(upstream);
                _ = PumpAsync(client, upstream);
                _ = PumpAsync(upstream, client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var n = await from.GetStream().ReadAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    break;
                }

                if (!_silent)
                {
                    await to.GetStream().WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }

        // While silent a close does not get through either: the broker learns of it only from the keepalive.
        from.Dispose();
        if (!_silent)
        {
            to.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        Restore();
        return ValueTask.CompletedTask;
    }
}
