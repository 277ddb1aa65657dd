using System.Collections.Concurrent;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Tests.Integration;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Agent.Tests.Mqtt;

/// <summary>
/// What a node takes from the broker, through a real broker: its own topics always; the cluster's route
/// table (every node's pod CIDR, O(nodes) bytes per change) only when it runs the pod network.
/// </summary>
public sealed class MqttLinkSubscriptionTests : IAsyncLifetime
{
    private readonly TestBroker _broker = new(new Dictionary<string, string> { ["net-node"] = "s1", ["plain-node"] = "s2" });
    private readonly LinkRunner _links = new();

    public async Task InitializeAsync()
    {
        await _broker.StartAsync();
        await _broker.PublishAsync("edgekube/v1/cluster/routes", """{"clusterCIDR":"10.244.0.0/16","routes":[]}""");
        await _broker.PublishAsync("edgekube/v1/nodes/net-node/spec", "{}");
        await _broker.PublishAsync("edgekube/v1/nodes/plain-node/spec", "{}");
    }

    [Fact]
    public async Task Only_a_node_running_the_pod_network_takes_the_route_table()
    {
        var net = Start("net-node", "s1", podNetwork: true);
        var plain = Start("plain-node", "s2", podNetwork: false);
        await Eventually.Until(() => Task.FromResult(net.Any(t => t.EndsWith("/spec", StringComparison.Ordinal)) && plain.Any(t => t.EndsWith("/spec", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(30), () => $"specs not received: net {string.Join(", ", net)}; plain {string.Join(", ", plain)}");
        await Eventually.Until(() => Task.FromResult(net.Contains("edgekube/v1/cluster/routes")), TimeSpan.FromSeconds(30), () => "the pod-network node got no route table");

        // A change of the table goes to the pod-network node only, as the retained copy did.
        await _broker.PublishAsync("edgekube/v1/cluster/routes", """{"clusterCIDR":"10.244.0.0/16","routes":[{"node":"x","podCIDR":"10.244.9.0/24","nodeIP":"192.0.2.9"}]}""");
        await Eventually.Until(() => Task.FromResult(net.Count(t => t == "edgekube/v1/cluster/routes") == 2), TimeSpan.FromSeconds(30), () => "the change did not reach the pod-network node");
        await Task.Delay(300);
        Assert.DoesNotContain("edgekube/v1/cluster/routes", plain);
    }

    private ConcurrentQueue<string> Start(string node, string password, bool podNetwork)
    {
        var link = new MqttLink(new BrokerOptions { Url = new Uri($"mqtt://127.0.0.1:{_broker.Port}"), Username = node, Password = password },
            node, TimeProvider.System, NullLogger<MqttLink>.Instance) { PodNetwork = podNetwork };
        var topics = new ConcurrentQueue<string>();
        link.MessageReceived += m =>
        {
            topics.Enqueue(m.Topic);
            return Task.CompletedTask;
        };
        _links.Run(link);
        return topics;
    }

    public async Task DisposeAsync()
    {
        await _links.DisposeAsync();
        await _broker.DisposeAsync();
    }
}
