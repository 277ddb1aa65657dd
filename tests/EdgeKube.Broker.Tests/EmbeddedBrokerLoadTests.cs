using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace EdgeKube.Broker.Tests;

/// <summary>
/// The embedded broker under the load the scale benchmark showed: many nodes reporting at once to the
/// master's single session. Nothing may be dropped (a dropped node status is a node that never registers).
/// </summary>
public sealed class EmbeddedBrokerLoadTests : IAsyncLifetime
{
    private const int Nodes = 40;
    private const int MessagesPerNode = 50;
    private readonly string _dataDir = Directory.CreateTempSubdirectory("edgekube-broker-load-").FullName;
    private readonly List<IMqttClient> _clients = [];
    private EmbeddedBroker _broker = null!;
    private CredentialStore _credentials = null!;
    private int _port;

    public async Task InitializeAsync()
    {
        _credentials = new CredentialStore(_dataDir);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        _port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        _broker = new EmbeddedBroker(new IPEndPoint(IPAddress.Loopback, _port), _credentials, new NodeAcl(), NullLogger.Instance);
        await _broker.StartAsync();
    }

    [Fact]
    public async Task A_burst_from_many_nodes_reaches_a_slow_master_session_whole()
    {
        var masterPassword = _credentials.Create(NodeAcl.MasterUser);
        var received = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var master = await ConnectAsync("edgekube-master", NodeAcl.MasterUser, masterPassword);
        master.ApplicationMessageReceivedAsync += async _ =>
        {
            // The master is busy (its store) while the burst arrives.
            await gate.Task;
            Interlocked.Increment(ref received);
        };
        await master.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter("edgekube/v1/nodes/+/status", MqttQualityOfServiceLevel.AtLeastOnce).Build());

        var payload = new byte[8192];
        var nodes = new List<(IMqttClient Client, string Name)>();
        for (var i = 0; i < Nodes; i++)
        {
            var name = $"node-{i}";
            nodes.Add((await ConnectAsync("edgekube-agent-" + name, name, _credentials.Create(name)), name));
        }

        await Task.WhenAll(nodes.Select(async n =>
        {
            for (var m = 0; m < MessagesPerNode; m++)
            {
                await n.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"edgekube/v1/nodes/{n.Name}/status")
                    .WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            }
        }));
        gate.SetResult();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Volatile.Read(ref received) < Nodes * MessagesPerNode && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(0, _broker.DroppedMessages);
        Assert.Equal(Nodes * MessagesPerNode, Volatile.Read(ref received));
    }

    private async Task<IMqttClient> ConnectAsync(string clientId, string user, string password)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials(user, password).WithClientId(clientId).Build());
        _clients.Add(client);
        return client;
    }

    public async Task DisposeAsync()
    {
        foreach (var c in _clients)
        {
            c.Dispose();
        }

        await _broker.DisposeAsync();
        Directory.Delete(_dataDir, recursive: true);
    }
}
