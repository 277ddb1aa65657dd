using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using EdgeKube.Master.Tests.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Master.Tests.Controllers;

/// <summary>The pods-by-node index against the real SQLite store: its first list, each kind of change, and a watch that fell behind.</summary>
public sealed class PodNodeIndexTests : IAsyncLifetime
{
    // A guard against a hung test, not a timing assertion: everything awaited is due at once.
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(30);

    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-pod-index-").FullName;
    private readonly CancellationTokenSource _stop = new();
    private RecordingObjectStore? _store;
    private PodNodeIndex? _index;
    private Task _loop = Task.CompletedTask;

    private RecordingObjectStore Store => _store ?? throw new InvalidOperationException("no store opened");

    private PodNodeIndex Index => _index ?? throw new InvalidOperationException("no store opened");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _store?.ReleaseWatches();
        await _loop.WaitAsync(Hang);
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }

        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task OpenAsync(StoreLimits? limits = null)
    {
        _store = new RecordingObjectStore(await SqliteObjectStore.OpenAsync(Path.Combine(_dir, "state.db"), limits ?? StoreLimits.Default));
        _index = new PodNodeIndex(_store, NullLogger<PodNodeIndex>.Instance);
    }

    private async Task StartAsync()
    {
        _loop = Index.RunAsync(_stop.Token);
        await Index.Synced.WaitAsync(Hang);
    }

    private static JsonArray DefaultTolerations() =>
    [
        new JsonObject { ["key"] = "node.kubernetes.io/not-ready", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = 300 },
        new JsonObject { ["key"] = "node.kubernetes.io/unreachable", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = 300 },
    ];

    private async Task<long> CreateAsync(string name, string? node, string ns = "default", string? uid = null)
    {
        var spec = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "busybox" }),
            ["tolerations"] = DefaultTolerations(),
        };
        if (node is not null)
        {
            spec["nodeName"] = node;
        }

        var pod = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns, ["uid"] = uid ?? "uid-" + name },
            ["spec"] = spec,
            ["status"] = new JsonObject { ["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = "True" }) },
        };
        return (await Store.CreateAsync(new ObjectKey("pods", ns, name), pod)).ResourceVersion();
    }

    private async Task<long> ChangeAsync(string name, Action<JsonObject> change)
    {
        var key = new ObjectKey("pods", "default", name);
        var pod = (await Store.GetAsync(key))!;
        change(pod);
        return (await Store.UpdateAsync(key, pod, pod.ResourceVersion())).ResourceVersion();
    }

    private async Task<long> DeleteAsync(string name) => (await Store.DeleteAsync(new ObjectKey("pods", "default", name))).ResourceVersion();

    private Task CaughtUpAsync(long resourceVersion) => Index.WaitForAsync(resourceVersion).WaitAsync(Hang);

    private List<string> Names(string node) => [.. Index.PodsOn(node).Select(p => p.Name)];

    private List<string> Nodes() => [.. Index.NodesWithPods().Order(StringComparer.Ordinal)];

    [Fact]
    public async Task The_pods_in_the_store_at_the_start_are_indexed_by_node_once_synced()
    {
        await OpenAsync();
        await CreateAsync("c", "n1");
        await CreateAsync("a", "n1");
        await CreateAsync("e", "n1", ns: "kube-system");
        await CreateAsync("b", "n2");
        await CreateAsync("pending", null);
        Assert.False(Index.Synced.IsCompleted);
        Assert.Empty(Index.PodsOn("n1"));

        await StartAsync();

        Assert.Equal(["a", "c", "e"], Names("n1"));
        Assert.Equal(["b"], Names("n2"));
        Assert.Empty(Names("n3"));
        Assert.Equal(["n1", "n2"], Nodes());
        Assert.Equal(4, Index.Count);
        Assert.Equal(Store.CurrentResourceVersion, Index.ResourceVersion);

        var a = Index.PodsOn("n1")[0];
        var stored = (await Store.GetAsync(new ObjectKey("pods", "default", "a")))!;
        Assert.Equal(new ObjectKey("pods", "default", "a"), a.Key);
        Assert.Equal(("uid-a", "n1", stored.ResourceVersion(), "True", false, false), (a.Uid, a.NodeName, a.ResourceVersion, a.ReadyStatus, a.Terminating, a.Stopped));
        Assert.Equal(["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"], a.Tolerations.Select(t => t.Key));
        Assert.Equal(300L, a.Tolerations[0].TolerationSeconds);

        // The same toleration list is parsed once and shared.
        Assert.Same(a.Tolerations, Index.PodsOn("n2")[0].Tolerations);
    }

    [Fact]
    public async Task A_pod_is_indexed_when_bound_changes_with_its_status_and_deletion_and_leaves_when_deleted()
    {
        await OpenAsync();
        await StartAsync();

        await CaughtUpAsync(await CreateAsync("web", null));
        Assert.Empty(Nodes());
        Assert.Equal(0, Index.Count);

        // Bound by the scheduler (an update setting spec.nodeName).
        await CaughtUpAsync(await ChangeAsync("web", p => p["spec"]!["nodeName"] = "n1"));
        var web = Assert.Single(Index.PodsOn("n1"));
        Assert.Equal(("web", "uid-web", "True"), (web.Name, web.Uid, web.ReadyStatus));
        Assert.Equal(["n1"], Nodes());

        await CaughtUpAsync(await ChangeAsync("web", p => p["status"]!["conditions"]![0]!["status"] = "False"));
        Assert.Equal("False", Assert.Single(Index.PodsOn("n1")).ReadyStatus);

        await CaughtUpAsync(await ChangeAsync("web", p =>
        {
            p.Metadata()["deletionTimestamp"] = "2026-01-01T00:00:00Z";
            p.Metadata()["deletionGracePeriodSeconds"] = 30;
        }));
        Assert.Equal((true, false), (Index.PodsOn("n1")[0].Terminating, Index.PodsOn("n1")[0].Stopped));
        await CaughtUpAsync(await ChangeAsync("web", p => p.Metadata()["deletionGracePeriodSeconds"] = 0));
        Assert.Equal((true, true), (Index.PodsOn("n1")[0].Terminating, Index.PodsOn("n1")[0].Stopped));

        await CaughtUpAsync(await DeleteAsync("web"));
        Assert.Empty(Index.PodsOn("n1"));
        Assert.Empty(Nodes());
        Assert.Equal(0, Index.Count);

        // A pod cannot move to another node; one of the same name is recreated there.
        await CaughtUpAsync(await CreateAsync("web", "n2", uid: "uid-web-2"));
        Assert.Empty(Index.PodsOn("n1"));
        Assert.Equal("uid-web-2", Assert.Single(Index.PodsOn("n2")).Uid);

        // The store itself does not forbid the move: the index follows it all the same.
        await CaughtUpAsync(await ChangeAsync("web", p => p["spec"]!["nodeName"] = "n3"));
        Assert.Equal(["n3"], Nodes());
        Assert.Equal(["web"], Names("n3"));
    }

    [Fact]
    public async Task A_watch_that_fell_behind_is_answered_with_a_new_list()
    {
        await OpenAsync(new StoreLimits { WatcherBufferCapacity = 2 });
        await CreateAsync("a", "n1");
        await CreateAsync("b", "n1");
        await StartAsync();
        await Store.WatchCalledAsync(Hang);
        var listed = Index.ResourceVersion;
        Assert.Equal(1, Store.Lists("pods"));

        // The index stops taking events; five changes overflow its watch's buffer of two (and one held).
        Store.HoldWatches();
        await CreateAsync("c", "n2");
        await DeleteAsync("a");
        await CreateAsync("d", null);
        await ChangeAsync("d", p => p["spec"]!["nodeName"] = "n2");
        var last = await CreateAsync("e", "n3");
        Assert.Equal(["a", "b"], Names("n1"));
        Assert.Equal(["n1"], Nodes());
        Assert.Equal(listed, Index.ResourceVersion);

        Store.ReleaseWatches();
        await CaughtUpAsync(last);

        Assert.Equal(2, Store.Lists("pods"));
        Assert.Equal(["b"], Names("n1"));
        Assert.Equal(["c", "d"], Names("n2"));
        Assert.Equal(["e"], Names("n3"));

        // And it follows the new watch.
        await Store.WatchCalledAsync(Hang);
        await CaughtUpAsync(await DeleteAsync("b"));
        Assert.Equal(["n2", "n3"], Nodes());
        Assert.Equal(2, Store.Lists("pods"));
    }

    [Fact]
    public async Task Pods_waiting_for_a_node_are_listed_oldest_first_until_bound_or_deleted()
    {
        await OpenAsync();
        await StartAsync();
        foreach (var (name, created) in new[] { ("late", "2026-01-01T00:00:03Z"), ("early", "2026-01-01T00:00:01Z"), ("b-same", "2026-01-01T00:00:02Z"), ("a-same", "2026-01-01T00:00:02Z") })
        {
            await CreateAsync(name, null);
            await CaughtUpAsync(await ChangeAsync(name, p => p.Metadata()["creationTimestamp"] = created));
        }

        Assert.Equal(["early", "a-same", "b-same", "late"], Index.Pending().Select(p => p.Name));
        Assert.Equal(new ObjectKey("pods", "default", "early"), Index.Pending()[0].Key);

        await CaughtUpAsync(await ChangeAsync("early", p =>
        {
            p["spec"]!["nodeName"] = "n1";
            p["status"]!["phase"] = "Running";
        }));
        await CaughtUpAsync(await ChangeAsync("a-same", p => p.Metadata()["deletionTimestamp"] = "2026-01-01T00:00:05Z"));
        await CaughtUpAsync(await DeleteAsync("late"));
        Assert.Equal(["b-same"], Index.Pending().Select(p => p.Name));
        Assert.Equal(["early"], Index.AllBound().Select(p => p.Name));
        Assert.Equal("Running", Index.AllBound()[0].Phase);

        // A new list (as after a watch that fell behind) keeps them apart the same way.
        _index = new PodNodeIndex(Store, NullLogger<PodNodeIndex>.Instance);
        await _stop.CancelAsync();
        Store.ReleaseWatches();
        await _loop.WaitAsync(Hang);
        using var stop = new CancellationTokenSource();
        var loop = Index.RunAsync(stop.Token);
        await Index.Synced.WaitAsync(Hang);
        Assert.Equal(["b-same"], Index.Pending().Select(p => p.Name));
        Assert.Equal(["early"], Index.AllBound().Select(p => p.Name));
        await stop.CancelAsync();
        Store.ReleaseWatches();
        await loop.WaitAsync(Hang);
    }
}
