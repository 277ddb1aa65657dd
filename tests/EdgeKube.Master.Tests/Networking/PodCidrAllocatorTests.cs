using System.Text.Json.Nodes;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Networking;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Networking;

public sealed class PodCidrAllocatorTests
{
    [Fact]
    public void Hands_out_the_lowest_free_subnet_and_reuses_freed_ones()
    {
        var a = new PodCidrAllocator("10.244.0.0/16", 24);
        Assert.Equal(256, a.Capacity);
        Assert.Equal("10.244.0.0/24", a.Allocate());
        Assert.Equal("10.244.1.0/24", a.Allocate());
        Assert.Equal("10.244.2.0/24", a.Allocate());
        Assert.True(a.Release("10.244.1.0/24"));
        Assert.False(a.Release("10.244.1.0/24"));
        Assert.Equal("10.244.1.0/24", a.Allocate());
        Assert.Equal("10.244.3.0/24", a.Allocate());
    }

    [Fact]
    public void Occupied_subnets_are_never_allocated_again()
    {
        var a = new PodCidrAllocator("10.244.0.0/16", 24);
        Assert.True(a.Occupy("10.244.0.0/24"));
        Assert.True(a.Occupy("10.244.2.0/24"));
        Assert.Equal("10.244.1.0/24", a.Allocate());
        Assert.Equal("10.244.3.0/24", a.Allocate());
        Assert.False(a.Occupy("10.245.0.0/24"));
        Assert.False(a.Occupy("10.244.4.0/25"));
        Assert.False(a.Occupy("10.244.4.1/24"));
        Assert.False(a.Occupy("garbage"));
    }

    [Fact]
    public void A_full_range_returns_null_and_the_mask_size_sets_the_count()
    {
        var a = new PodCidrAllocator("192.168.8.0/22", 24);
        Assert.Equal(["192.168.8.0/24", "192.168.9.0/24", "192.168.10.0/24", "192.168.11.0/24"], [a.Allocate()!, a.Allocate()!, a.Allocate()!, a.Allocate()!]);
        Assert.Null(a.Allocate());

        var small = new PodCidrAllocator("10.0.0.0/24", 26);
        Assert.Equal("10.0.0.0/26", small.Allocate());
        Assert.Equal("10.0.0.64/26", small.Allocate());
    }

    [Theory]
    [InlineData("10.244.0.0", 24)]
    [InlineData("10.244.0.1/16", 24)]
    [InlineData("fd00::/64", 80)]
    [InlineData("10.244.0.0/16", 8)]
    [InlineData("10.244.0.0/16", 31)]
    [InlineData("10.0.0.0/8", 25)]
    public void Bad_settings_are_refused(string cidr, int mask) =>
        Assert.Throws<ArgumentException>(() => new PodCidrAllocator(cidr, mask));
}

public sealed class NodeIpamControllerTests
{
    private readonly InMemoryObjectStore _store = new();
    private readonly FakeTimeProvider _time = new();

    private NodeIpamController Controller() => new(_store, "10.244.0.0/16", 24, new EventRecorder(_store, _time), NullLogger<NodeIpamController>.Instance);

    private Task AddNodeAsync(string name, string? cidr = null)
    {
        var node = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Node", ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = name }, ["spec"] = new JsonObject() };
        if (cidr is not null)
        {
            node["spec"]!["podCIDR"] = cidr;
        }

        return _store.CreateAsync(new ObjectKey("nodes", string.Empty, name), node);
    }

    private async Task<string?> CidrOfAsync(string name) =>
        (await _store.GetAsync(new ObjectKey("nodes", string.Empty, name)))?["spec"]?["podCIDR"]?.GetValue<string>();

    [Fact]
    public async Task Nodes_get_distinct_cidrs_recorded_in_their_spec()
    {
        await AddNodeAsync("b");
        await AddNodeAsync("a");
        await Controller().SweepAsync(CancellationToken.None);
        Assert.Equal("10.244.0.0/24", await CidrOfAsync("a"));
        Assert.Equal("10.244.1.0/24", await CidrOfAsync("b"));
        var a = await _store.GetAsync(new ObjectKey("nodes", string.Empty, "a"));
        Assert.Equal("10.244.0.0/24", a!["spec"]!["podCIDRs"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task A_new_controller_over_the_same_store_never_allocates_twice_and_a_removed_node_frees_its_cidr()
    {
        await AddNodeAsync("a");
        await AddNodeAsync("b");
        await AddNodeAsync("c");
        await Controller().SweepAsync(CancellationToken.None);

        // A restarted master: a fresh controller sees what the nodes hold.
        await _store.DeleteAsync(new ObjectKey("nodes", string.Empty, "b"));
        await AddNodeAsync("d");
        await AddNodeAsync("e");
        await Controller().SweepAsync(CancellationToken.None);
        Assert.Equal("10.244.0.0/24", await CidrOfAsync("a"));
        Assert.Equal("10.244.2.0/24", await CidrOfAsync("c"));
        Assert.Equal("10.244.1.0/24", await CidrOfAsync("d"));
        Assert.Equal("10.244.3.0/24", await CidrOfAsync("e"));
    }

    [Fact]
    public async Task A_cidr_set_by_hand_is_kept_and_avoided()
    {
        await AddNodeAsync("manual", "10.244.0.0/24");
        await AddNodeAsync("outside", "192.168.50.0/24");
        await AddNodeAsync("auto");
        await Controller().SweepAsync(CancellationToken.None);
        Assert.Equal("10.244.0.0/24", await CidrOfAsync("manual"));
        Assert.Equal("192.168.50.0/24", await CidrOfAsync("outside"));
        Assert.Equal("10.244.1.0/24", await CidrOfAsync("auto"));
    }
}
