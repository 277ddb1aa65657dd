using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Network;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Agent.Tests.Network;

/// <summary>A routing table in memory, holding only "our" routes, as the iproute2 backend lists them.</summary>
internal sealed class FakeRoutes : IRouteBackend
{
    public HashSet<PodRoute> Routes { get; } = [];

    public List<string> Calls { get; } = [];

    public string? FailOn { get; set; }

    public Task<IReadOnlyList<PodRoute>> ListAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<PodRoute>>([.. Routes]);

    public Task ReplaceAsync(PodRoute route, CancellationToken cancellationToken)
    {
        if (route.Destination == FailOn)
        {
            throw new NetworkException($"Error: Nexthop has invalid gateway ({route.Gateway})");
        }

        Calls.Add($"replace {route.Destination} via {route.Gateway}");
        Routes.RemoveWhere(r => r.Destination == route.Destination);
        Routes.Add(route);
        return Task.CompletedTask;
    }

    public Task DeleteAsync(PodRoute route, CancellationToken cancellationToken)
    {
        Calls.Add($"delete {route.Destination}");
        Routes.Remove(route);
        return Task.CompletedTask;
    }

    public Task EnsureEgressAsync(string podCidr, string clusterCidr, CancellationToken cancellationToken)
    {
        Calls.Add($"egress {podCidr} !{clusterCidr}");
        return Task.CompletedTask;
    }
}

public sealed class PodNetworkTests : IDisposable
{
    private readonly Topics _topics = new();
    private readonly FakeRoutes _routes = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-cni-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PodNetwork Network() => new("b", _topics, Path.Combine(_dir, "net.d"), Path.Combine(_dir, "ipam"), _routes, TimeProvider.System, NullLogger<PodNetwork>.Instance);

    private MqttMessage Spec(string json) => new(_topics.NodeSpec("b"), Encoding.UTF8.GetBytes(json), true);

    private MqttMessage Table(params NodeRoute[] routes) =>
        new(_topics.Routes, JsonSerializer.SerializeToUtf8Bytes(new RouteTable("10.244.0.0/16", routes), ProtocolJson.Default.RouteTable), true);

    [Fact]
    public async Task The_pod_cidr_becomes_a_bridge_host_local_portmap_conflist_without_masquerade()
    {
        var network = Network();
        await network.HandleAsync(Spec("""{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]}"""));
        Assert.Equal("10.244.1.0/24", network.PodCidr);
        using var doc = JsonDocument.Parse(File.ReadAllText(network.ConfigPath));
        var plugins = doc.RootElement.GetProperty("plugins");
        Assert.Equal("edgekube", doc.RootElement.GetProperty("name").GetString());
        Assert.Equal("bridge", plugins[0].GetProperty("type").GetString());
        Assert.False(plugins[0].GetProperty("ipMasq").GetBoolean());
        Assert.True(plugins[0].GetProperty("isGateway").GetBoolean());
        var ipam = plugins[0].GetProperty("ipam");
        Assert.Equal("host-local", ipam.GetProperty("type").GetString());
        Assert.Equal("10.244.1.0/24", ipam.GetProperty("ranges")[0][0].GetProperty("subnet").GetString());
        Assert.Equal(Path.Combine(_dir, "ipam"), ipam.GetProperty("dataDir").GetString());
        Assert.Equal("portmap", plugins[1].GetProperty("type").GetString());
    }

    [Fact]
    public async Task Routes_follow_the_table_other_nodes_only_and_departed_nodes_lose_theirs()
    {
        var network = Network();
        await network.HandleAsync(Spec("""{"podCIDR":"10.244.1.0/24"}"""));
        await network.HandleAsync(Table(new("a", "10.244.0.0/24", "192.168.1.10"), new("b", "10.244.1.0/24", "192.168.1.11"), new("c", "10.244.2.0/24", "192.168.1.12")));
        Assert.Equal([new PodRoute("10.244.0.0/24", "192.168.1.10"), new PodRoute("10.244.2.0/24", "192.168.1.12")], _routes.Routes.OrderBy(r => r.Destination));
        Assert.Contains("egress 10.244.1.0/24 !10.244.0.0/16", _routes.Calls);

        // c moved to another address, a left.
        _routes.Calls.Clear();
        await network.HandleAsync(Table(new("b", "10.244.1.0/24", "192.168.1.11"), new("c", "10.244.2.0/24", "192.168.1.99")));
        Assert.Equal([new PodRoute("10.244.2.0/24", "192.168.1.99")], _routes.Routes);
        Assert.Contains("delete 10.244.0.0/24", _routes.Calls);
        Assert.Contains("replace 10.244.2.0/24 via 192.168.1.99", _routes.Calls);

        // Nothing changed: nothing done but the egress check.
        _routes.Calls.Clear();
        await network.HandleAsync(Table(new("b", "10.244.1.0/24", "192.168.1.11"), new("c", "10.244.2.0/24", "192.168.1.99")));
        Assert.DoesNotContain(_routes.Calls, c => c.StartsWith("replace", StringComparison.Ordinal) || c.StartsWith("delete", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bad_entries_and_failing_routes_do_not_stop_the_rest()
    {
        var network = Network();
        _routes.FailOn = "10.244.3.0/24";
        await network.HandleAsync(Table(
            new("x", "not-a-cidr", "192.168.1.10"),
            new("y", "10.244.4.0/24", "no-ip"),
            new("z", "10.244.3.0/24", "192.168.1.13"),
            new("w", "10.244.5.0/24", "192.168.1.15")));
        Assert.Equal([new PodRoute("10.244.5.0/24", "192.168.1.15")], _routes.Routes);

        await Assert.ThrowsAnyAsync<JsonException>(() => network.HandleAsync(new MqttMessage(_topics.Routes, Encoding.UTF8.GetBytes("{garbage"), true)));
        await network.HandleAsync(Spec("""{"podCIDR":"10.244.1.7/24"}"""));
        Assert.Null(network.PodCidr);
        Assert.False(File.Exists(network.ConfigPath));
    }

    [Fact]
    public void The_plan_replaces_what_differs_and_deletes_what_is_not_wanted()
    {
        var (replace, delete) = PodNetwork.Plan(
            [new("10.244.0.0/24", "10.0.0.1"), new("10.244.2.0/24", "10.0.0.3")],
            [new("10.244.0.0/24", "10.0.0.1"), new("10.244.2.0/24", "10.0.0.9"), new("10.244.7.0/24", "10.0.0.7")]);
        Assert.Equal([new PodRoute("10.244.2.0/24", "10.0.0.3")], replace);
        Assert.Equal([new PodRoute("10.244.7.0/24", "10.0.0.7")], delete);
    }
}
