using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace EdgeKube.Broker.Tests;

/// <summary>The ACL enforced by a real broker: the embedded one and mosquitto configured by MosquittoConfig.</summary>
public abstract class BrokerAclTests : IAsyncLifetime
{
    protected const string Prefix = "edgekube/v1";

    protected string DataDir { get; } = Directory.CreateTempSubdirectory("edgekube-broker-").FullName;

    protected CredentialStore Credentials { get; private set; } = null!;

    protected int Port { get; } = FreePort();

    protected string MasterPassword { get; private set; } = string.Empty;

    protected string Board1Password { get; private set; } = string.Empty;

    protected string Board2Password { get; private set; } = string.Empty;

    public virtual async Task InitializeAsync()
    {
        Credentials = new CredentialStore(DataDir);
        MasterPassword = Credentials.Create(NodeAcl.MasterUser);
        Board1Password = Credentials.Create("board-1");
        Board2Password = Credentials.Create("board-2");
        await StartBrokerAsync();
    }

    protected abstract Task StartBrokerAsync();

    protected virtual bool RefusesForeignSubscriptions => true;

    public virtual Task DisposeAsync()
    {
        Directory.Delete(DataDir, recursive: true);
        return Task.CompletedTask;
    }

    protected async Task<(IMqttClient Client, List<string> Received)> ConnectAsync(string user, string password, string? clientId = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var received = new List<string>();
        client.ApplicationMessageReceivedAsync += e =>
        {
            lock (received)
            {
                received.Add(e.ApplicationMessage.Topic + "=" + e.ApplicationMessage.ConvertPayloadToString());
            }

            return Task.CompletedTask;
        };
        var result = await client.ConnectAsync(new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", Port).WithCredentials(user, password).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithClientId(clientId ?? (user == NodeAcl.MasterUser ? "edgekube-master" : "edgekube-agent-" + user)).Build());
        Assert.Equal(MqttClientConnectResultCode.Success, result.ResultCode);
        return (client, received);
    }

    private static async Task<MqttClientPublishResult> Publish(IMqttClient client, string topic, string payload) =>
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build());

    private static async Task<MqttClientSubscribeResultCode> Subscribe(IMqttClient client, string filter) =>
        (await client.SubscribeAsync(new MqttClientFactory().CreateSubscribeOptionsBuilder().WithTopicFilter(filter, MqttQualityOfServiceLevel.AtLeastOnce).Build())).Items.Single().ResultCode;

    /// <summary>A message as a subscriber got it: the retain flag and QoS are part of what the tests check.</summary>
    protected sealed record Got(string Topic, string Payload, bool Retain, MqttQualityOfServiceLevel Qos);

    protected async Task<(IMqttClient Client, List<Got> Got)> ConnectRecordingAsync(string user, string password, string? clientId = null)
    {
        var (client, _) = await ConnectAsync(user, password, clientId);
        var got = new List<Got>();
        client.ApplicationMessageReceivedAsync += e =>
        {
            lock (got)
            {
                got.Add(new Got(e.ApplicationMessage.Topic, e.ApplicationMessage.ConvertPayloadToString(), e.ApplicationMessage.Retain, e.ApplicationMessage.QualityOfServiceLevel));
            }

            return Task.CompletedTask;
        };
        return (client, got);
    }

    private static Task SubscribeAsync(IMqttClient client, string filter, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, MqttRetainHandling handling = MqttRetainHandling.SendAtSubscribe) =>
        client.SubscribeAsync(new MqttClientFactory().CreateSubscribeOptionsBuilder()
            .WithTopicFilter(new MqttTopicFilterBuilder().WithTopic(filter).WithQualityOfServiceLevel(qos).WithRetainHandling(handling).Build()).Build());

    private static Got[] Snapshot(List<Got> got)
    {
        lock (got)
        {
            return [.. got.OrderBy(g => g.Topic, StringComparer.Ordinal).ThenBy(g => g.Payload, StringComparer.Ordinal)];
        }
    }

    [Fact]
    public async Task Retained_messages_reach_each_subscription_as_mqtt_says()
    {
        var (master, _) = await ConnectAsync(NodeAcl.MasterUser, MasterPassword);
        await Publish(master, $"{Prefix}/nodes/board-1/spec", "spec-1");
        await Publish(master, $"{Prefix}/nodes/board-1/pods/default/web", "web-1");
        await Publish(master, $"{Prefix}/nodes/board-1/pods/default/gone", "gone-1");
        await master.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{Prefix}/nodes/board-1/pods/default/gone")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build());
        await Publish(master, $"{Prefix}/nodes/board-2/spec", "spec-2");
        await Publish(master, $"{Prefix}/cluster/routes", "routes");
        var (reporter, _) = await ConnectAsync("board-1", Board1Password);
        await Publish(reporter, $"{Prefix}/nodes/board-1/status", "status-1");
        await Publish(reporter, $"{Prefix}/nodes/board-1/pods/default/web/status", "web-status-1");
        await reporter.DisconnectAsync();

        // A node's own filters: its retained messages and the cluster's, flagged retained; not the cleared
        // pod, not its pods' statuses (one level deeper than pods/+/+), nothing of another node.
        var (board1, seen1) = await ConnectRecordingAsync("board-1", Board1Password);
        foreach (var filter in new[] { $"{Prefix}/nodes/board-1/pods/+/+", $"{Prefix}/nodes/board-1/spec", $"{Prefix}/cluster/#" })
        {
            await SubscribeAsync(board1, filter);
        }

        Got[] expected1 =
        [
            new($"{Prefix}/cluster/routes", "routes", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/pods/default/web", "web-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/spec", "spec-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
        ];
        await Until(() => Snapshot(seen1).Length >= expected1.Length);
        await Task.Delay(300);
        Assert.Equal(expected1, Snapshot(seen1));

        // The master's wildcard filters see every node's; at QoS 0 a QoS 1 message comes down to QoS 0.
        var (watcher, seenM) = await ConnectRecordingAsync(NodeAcl.MasterUser, MasterPassword, "edgekube-master-2");
        await SubscribeAsync(watcher, $"{Prefix}/nodes/+/spec");
        await SubscribeAsync(watcher, $"{Prefix}/nodes/+/status", MqttQualityOfServiceLevel.AtMostOnce);
        await SubscribeAsync(watcher, $"{Prefix}/nodes/+/pods/+/+/status");
        Got[] expectedM =
        [
            new($"{Prefix}/nodes/board-1/pods/default/web/status", "web-status-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/spec", "spec-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/status", "status-1", true, MqttQualityOfServiceLevel.AtMostOnce),
            new($"{Prefix}/nodes/board-2/spec", "spec-2", true, MqttQualityOfServiceLevel.AtLeastOnce),
        ];
        await Until(() => Snapshot(seenM).Length >= expectedM.Length);
        await Task.Delay(300);
        Assert.Equal(expectedM, Snapshot(seenM));

        // A live publish arrives without the retain flag, and replaces the retained one.
        lock (seen1)
        {
            seen1.Clear();
        }

        await Publish(master, $"{Prefix}/nodes/board-1/spec", "spec-1b");
        await Until(() => Snapshot(seen1).Length == 1);
        Assert.Equal(new Got($"{Prefix}/nodes/board-1/spec", "spec-1b", false, MqttQualityOfServiceLevel.AtLeastOnce), Snapshot(seen1)[0]);

        // Retain handling: 2 sends nothing; 1 sends nothing for a subscription the session already has, and
        // the current message for a new one; 0 sends it again.
        lock (seen1)
        {
            seen1.Clear();
        }

        await SubscribeAsync(board1, $"{Prefix}/nodes/board-1/pods/+/+", handling: MqttRetainHandling.DoNotSendOnSubscribe);
        await SubscribeAsync(board1, $"{Prefix}/nodes/board-1/spec", handling: MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly);
        await SubscribeAsync(board1, $"{Prefix}/nodes/board-1/#", handling: MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly);
        await Until(() => Snapshot(seen1).Length >= 4);
        await Task.Delay(300);
        Got[] expectedNew =
        [
            new($"{Prefix}/nodes/board-1/pods/default/web", "web-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/pods/default/web/status", "web-status-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/spec", "spec-1b", true, MqttQualityOfServiceLevel.AtLeastOnce),
            new($"{Prefix}/nodes/board-1/status", "status-1", true, MqttQualityOfServiceLevel.AtLeastOnce),
        ];
        Assert.Equal(expectedNew, Snapshot(seen1));
        lock (seen1)
        {
            seen1.Clear();
        }

        await SubscribeAsync(board1, $"{Prefix}/nodes/board-1/spec");
        await Until(() => Snapshot(seen1).Length >= 1);
        await Task.Delay(300);
        Assert.Equal([new Got($"{Prefix}/nodes/board-1/spec", "spec-1b", true, MqttQualityOfServiceLevel.AtLeastOnce)], Snapshot(seen1));
    }

    /// <summary>
    /// Whether a session with several subscriptions matching one message gets a single copy (MQTTnet, and
    /// the embedded broker's own node-topic delivery) rather than one per subscription (mosquitto); MQTT 5
    /// allows both, and either way the highest QoS granted among them reaches the client.
    /// </summary>
    protected virtual bool OneCopyForOverlappingSubscriptions => true;

    [Fact]
    public async Task Live_messages_reach_each_subscriber_as_mqtt_says()
    {
        var status = $"{Prefix}/nodes/board-1/pods/default/web/status";
        var spec = $"{Prefix}/nodes/board-1/spec";
        var (master, seenM) = await ConnectRecordingAsync(NodeAcl.MasterUser, MasterPassword);
        await SubscribeAsync(master, $"{Prefix}/nodes/+/pods/+/+/status");
        await SubscribeAsync(master, $"{Prefix}/nodes/board-1/#", MqttQualityOfServiceLevel.AtMostOnce);
        await master.SubscribeAsync(new MqttClientFactory().CreateSubscribeOptionsBuilder().WithTopicFilter(new MqttTopicFilterBuilder()
            .WithTopic($"{Prefix}/nodes/+/spec").WithAtLeastOnceQoS().WithNoLocal().Build()).Build());
        var (board1, seen1) = await ConnectRecordingAsync("board-1", Board1Password);
        await SubscribeAsync(board1, $"{Prefix}/nodes/board-1/#");
        var (board2, seen2) = await ConnectRecordingAsync("board-2", Board2Password);
        await SubscribeAsync(board2, $"{Prefix}/nodes/board-2/#");

        // A node's report: to the master, at the highest QoS among its two matching filters; back to the node
        // itself (no No Local); the retain flag dropped (no Retain As Published); nothing to another node.
        await Publish(board1, status, "running");
        await Until(() => Snapshot(seenM).Length >= 1 && Snapshot(seen1).Length >= 1);
        await Task.Delay(300);
        var toMaster = Snapshot(seenM);
        Assert.All(toMaster, g => Assert.Equal((status, "running", false), (g.Topic, g.Payload, g.Retain)));
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, toMaster.Max(g => g.Qos));
        if (OneCopyForOverlappingSubscriptions)
        {
            Assert.Single(toMaster);
        }

        Assert.Equal([new Got(status, "running", false, MqttQualityOfServiceLevel.AtLeastOnce)], Snapshot(seen1));
        Assert.Empty(Snapshot(seen2));

        // The master's own spec: No Local keeps it off its nodes/+/spec filter, but nodes/board-1/# (QoS 0)
        // still matches; the node gets it at QoS 1.
        Clear(seenM, seen1);
        await Publish(master, spec, "spec-a");
        await Until(() => Snapshot(seenM).Length >= 1 && Snapshot(seen1).Length >= 1);
        await Task.Delay(300);
        Assert.Equal([new Got(spec, "spec-a", false, MqttQualityOfServiceLevel.AtMostOnce)], Snapshot(seenM));
        Assert.Equal([new Got(spec, "spec-a", false, MqttQualityOfServiceLevel.AtLeastOnce)], Snapshot(seen1));

        // Retain As Published: the live message keeps its retain flag.
        var (watcher, seenW) = await ConnectRecordingAsync(NodeAcl.MasterUser, MasterPassword, "edgekube-master-2");
        await watcher.SubscribeAsync(new MqttClientFactory().CreateSubscribeOptionsBuilder().WithTopicFilter(new MqttTopicFilterBuilder()
            .WithTopic($"{Prefix}/nodes/+/spec").WithAtLeastOnceQoS().WithRetainAsPublished().WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe).Build()).Build());
        await Publish(master, spec, "spec-b");
        await Until(() => Snapshot(seenW).Length >= 1);
        Assert.Equal([new Got(spec, "spec-b", true, MqttQualityOfServiceLevel.AtLeastOnce)], Snapshot(seenW));

        // Unsubscribed: nothing more.
        await board1.UnsubscribeAsync($"{Prefix}/nodes/board-1/#");
        Clear(seen1);
        await Publish(master, spec, "spec-c");
        await Until(() => Snapshot(seenW).Length >= 2);
        await Task.Delay(300);
        Assert.Empty(Snapshot(seen1));

        // The node comes back on a new connection with a clean start (the old one is taken over): its new
        // subscription gets the retained spec, then each live one once; the old connection gets nothing.
        var (again, seenAgain) = await ConnectRecordingAsync("board-1", Board1Password);
        await SubscribeAsync(again, spec);
        await Until(() => Snapshot(seenAgain).Length >= 1);
        await Publish(master, spec, "spec-d");
        await Until(() => Snapshot(seenAgain).Length >= 2);
        await Task.Delay(300);
        Assert.Equal([new Got(spec, "spec-c", true, MqttQualityOfServiceLevel.AtLeastOnce), new Got(spec, "spec-d", false, MqttQualityOfServiceLevel.AtLeastOnce)], Snapshot(seenAgain));
        Assert.Empty(Snapshot(seen1));
        Assert.Empty(Snapshot(seen2));
        foreach (var client in new[] { master, again, board2, watcher })
        {
            await client.DisconnectAsync();
        }
    }

    private static void Clear(params List<Got>[] lists)
    {
        foreach (var list in lists)
        {
            lock (list)
            {
                list.Clear();
            }
        }
    }

    [Fact]
    public async Task A_node_reads_and_writes_only_its_own_topics()
    {
        var (master, masterSeen) = await ConnectAsync(NodeAcl.MasterUser, MasterPassword);
        var (board1, board1Seen) = await ConnectAsync("board-1", Board1Password);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, await Subscribe(master, $"{Prefix}/nodes/+/status"));
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, await Subscribe(board1, $"{Prefix}/nodes/board-1/#"));
        // The embedded broker refuses these subscriptions; mosquitto grants them but delivers nothing
        // the read ACL does not allow. Either way no foreign message may arrive (asserted below).
        foreach (var filter in new[] { $"{Prefix}/nodes/board-2/#", $"{Prefix}/nodes/+/status", "#" })
        {
            var code = await Subscribe(board1, filter);
            if (RefusesForeignSubscriptions)
            {
                Assert.Equal(MqttClientSubscribeResultCode.NotAuthorized, code);
            }
        }

        await Publish(master, $"{Prefix}/nodes/board-1/pods/default/web", "pod-for-1");
        await Publish(master, $"{Prefix}/nodes/board-2/pods/default/web", "pod-for-2");
        await Publish(board1, $"{Prefix}/nodes/board-1/status", "ok-1");
        await Publish(board1, $"{Prefix}/nodes/board-2/status", "forged-2");
        await Publish(board1, $"{Prefix}/nodes/board-1/pods/default/evil", "forged-pod");

        await Until(() => Has(board1Seen, $"{Prefix}/nodes/board-1/pods/default/web=pod-for-1") && Has(masterSeen, $"{Prefix}/nodes/board-1/status=ok-1"));
        // Give any forged message time to arrive before asserting it never did.
        await Task.Delay(500);
        Assert.False(Has(masterSeen, $"{Prefix}/nodes/board-2/status=forged-2"));
        Assert.False(Has(board1Seen, "/nodes/board-2/"));
        Assert.False(Has(board1Seen, "pod-for-2"));
        Assert.False(Has(board1Seen, "forged-pod"));
        await master.DisconnectAsync();
        await board1.DisconnectAsync();
    }

    [Fact]
    public async Task Identify_reaches_only_its_node_and_no_node_can_send_one()
    {
        var (master, masterSeen) = await ConnectAsync(NodeAcl.MasterUser, MasterPassword);
        var (board1, board1Seen) = await ConnectAsync("board-1", Board1Password);
        var (board2, board2Seen) = await ConnectAsync("board-2", Board2Password);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, await Subscribe(master, $"{Prefix}/nodes/+/identify"));
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, await Subscribe(board1, $"{Prefix}/nodes/board-1/identify"));
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, await Subscribe(board2, $"{Prefix}/nodes/board-2/#"));
        var peek = await Subscribe(board2, $"{Prefix}/nodes/board-1/identify");
        if (RefusesForeignSubscriptions)
        {
            Assert.Equal(MqttClientSubscribeResultCode.NotAuthorized, peek);
        }

        // A node may not make itself or another node flash: only the master's requests go out.
        await Publish(board1, $"{Prefix}/nodes/board-1/identify", "forged-1");
        await Publish(board1, $"{Prefix}/nodes/board-2/identify", "forged-2");
        await Publish(master, $"{Prefix}/nodes/board-1/identify", "identify-1");
        await Until(() => Has(board1Seen, $"{Prefix}/nodes/board-1/identify=identify-1") && Has(masterSeen, "identify-1"));
        await Task.Delay(500);
        Assert.False(Has(masterSeen, "forged"));
        Assert.False(Has(board1Seen, "forged"));
        Assert.False(Has(board2Seen, "forged"));
        Assert.False(Has(board2Seen, "identify-1"));
        await master.DisconnectAsync();
        await board1.DisconnectAsync();
        await board2.DisconnectAsync();
    }

    [Theory]
    [InlineData("", "")]
    [InlineData("board-1", "wrong")]
    [InlineData("nobody", "nothing")]
    public async Task Clients_without_valid_credentials_are_refused(string user, string password)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithProtocolVersion(MqttProtocolVersion.V500).WithClientId("edgekube-agent-" + user);
        if (user.Length > 0)
        {
            options = options.WithCredentials(user, password);
        }

        var outcome = await TryConnect(client, options.Build());
        Assert.NotEqual("Success", outcome);
        Assert.False(client.IsConnected);
    }

    /// <summary>"Success", or why the connection was refused.</summary>
    protected static async Task<string> TryConnect(IMqttClient client, MqttClientOptions options)
    {
        try
        {
            return (await client.ConnectAsync(options)).ResultCode.ToString();
        }
        catch (MQTTnet.Adapter.MqttConnectingFailedException e)
        {
            return e.Message;
        }
    }

    protected static bool Has(List<string> seen, string text)
    {
        lock (seen)
        {
            return seen.Any(s => s.Contains(text, StringComparison.Ordinal));
        }
    }

    protected static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached");
            await Task.Delay(50);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed class EmbeddedBrokerAclTests : BrokerAclTests
{
    private EmbeddedBroker? _broker;

    protected override Task StartBrokerAsync()
    {
        _broker = new EmbeddedBroker(new IPEndPoint(IPAddress.Loopback, Port), Credentials, new NodeAcl(), NullLogger.Instance);
        return _broker.StartAsync();
    }

    public override async Task DisposeAsync()
    {
        await _broker!.DisposeAsync();
        await base.DisposeAsync();
    }

    [Fact]
    public async Task A_node_cannot_take_over_another_nodes_session()
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials("board-1", Board1Password).WithClientId("edgekube-agent-board-2").Build();
        Assert.Contains("ClientIdentifierNotValid", await TryConnect(client, options));
    }

    [Fact]
    public async Task A_nodes_will_can_only_mark_itself_offline()
    {
        var (master, seen) = await ConnectAsync(NodeAcl.MasterUser, MasterPassword);
        await master.SubscribeAsync($"{Prefix}/nodes/#");
        var forger = new MqttClientFactory().CreateMqttClient();
        await forger.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials("board-1", Board1Password).WithClientId("edgekube-agent-board-1")
            .WithWillTopic($"{Prefix}/nodes/board-2/presence").WithWillPayload("offline").Build());
        var honest = new MqttClientFactory().CreateMqttClient();
        await honest.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials("board-2", Board2Password).WithClientId("edgekube-agent-board-2")
            .WithWillTopic($"{Prefix}/nodes/board-2/presence").WithWillPayload("offline").Build());

        // Drop both connections without a DISCONNECT, as a lost network does.
        forger.Dispose();
        honest.Dispose();
        await Until(() => Has(seen, $"{Prefix}/nodes/board-2/presence=offline"));
        await Task.Delay(300);
        lock (seen)
        {
            Assert.Single(seen, s => s == $"{Prefix}/nodes/board-2/presence=offline");
        }
    }
}

/// <summary>The same rules in a real mosquitto, configured from the files MosquittoConfig writes.</summary>
public sealed class MosquittoAclTests : BrokerAclTests
{
    private Process? _mosquitto;

    protected override bool RefusesForeignSubscriptions => false;

    protected override bool OneCopyForOverlappingSubscriptions => false;

    protected override async Task StartBrokerAsync()
    {
        var files = MosquittoConfig.Write(Path.Combine(DataDir, "mosquitto"), Credentials, new NodeAcl(), Port, runAsUser: "root");
        var conf = files.Single(f => f.EndsWith(".conf", StringComparison.Ordinal));
        var psi = new ProcessStartInfo("mosquitto", ["-c", conf]) { RedirectStandardError = true, RedirectStandardOutput = true };
        _mosquitto = Process.Start(psi) ?? throw new InvalidOperationException("mosquitto did not start");
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_mosquitto.HasExited)
            {
                await Task.Delay(100);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException("mosquitto did not start: " + await _mosquitto.StandardError.ReadToEndAsync());
            }
        }
    }

    public override async Task DisposeAsync()
    {
        if (_mosquitto is { HasExited: false })
        {
            _mosquitto.Kill();
            await _mosquitto.WaitForExitAsync();
        }

        _mosquitto?.Dispose();
        await base.DisposeAsync();
    }
}
