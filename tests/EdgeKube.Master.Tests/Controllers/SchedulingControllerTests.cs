using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using EdgeKube.Master.Tests.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Master.Tests.Controllers;

/// <summary>The scheduling loop over the real SQLite store, reading pods through the shared pod index: bindings, capacity across passes, and no list of every pod.</summary>
public sealed class SchedulingControllerTests : IAsyncLifetime
{
    // A guard against a hung test, not a timing assertion.
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(30);

    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-scheduling-").FullName;
    private readonly CancellationTokenSource _stop = new();
    private RecordingObjectStore _store = null!;
    private PodNodeIndex _index = null!;
    private SchedulingController _scheduler = null!;
    private Task _loop = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _store = new RecordingObjectStore(await SqliteObjectStore.OpenAsync(Path.Combine(_dir, "state.db"), StoreLimits.Default));
        _index = new PodNodeIndex(_store, NullLogger<PodNodeIndex>.Instance);
        _scheduler = new SchedulingController(_store, _index, new EventRecorder(_store, TimeProvider.System), TimeProvider.System, NullLogger<SchedulingController>.Instance);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _store.ReleaseWatches();
        await _loop.WaitAsync(Hang);
        await _store.DisposeAsync();
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private Task NodeAsync(string name, string cpu) => _store.CreateAsync(new ObjectKey("nodes", "", name), new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Node",
        ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = "uid-" + name },
        ["status"] = new JsonObject
        {
            ["allocatable"] = new JsonObject { ["cpu"] = cpu, ["memory"] = "1Gi", ["pods"] = "110" },
            ["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = "True" }),
        },
    });

    private async Task<long> PodAsync(string name, string cpu, string? node = null, string? phase = null)
    {
        var spec = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = "app",
                ["image"] = "busybox",
                ["resources"] = new JsonObject { ["requests"] = new JsonObject { ["cpu"] = cpu } },
            }),
        };
        if (node is not null)
        {
            spec["nodeName"] = node;
        }

        var pod = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default", ["uid"] = "uid-" + name, ["creationTimestamp"] = "2026-01-01T00:00:00Z" },
            ["spec"] = spec,
            ["status"] = phase is null ? new JsonObject() : new JsonObject { ["phase"] = phase },
        };
        return (await _store.CreateAsync(new ObjectKey("pods", "default", name), pod)).ResourceVersion();
    }

    private async Task<string?> NodeOfAsync(string pod) =>
        PodNodeIndex.NodeNameOf((await _store.GetAsync(new ObjectKey("pods", "default", pod)))!);

    private async Task<string?> ScheduledReasonAsync(string pod) =>
        ((await _store.GetAsync(new ObjectKey("pods", "default", pod)))!["status"]?["conditions"] as JsonArray)?
            .OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "PodScheduled")?.Str("reason");

    private async Task PassAsync(long lastWrite)
    {
        await _index.WaitForAsync(lastWrite).WaitAsync(Hang);
        await _scheduler.ScheduleAllAsync(CancellationToken.None).WaitAsync(Hang);
    }

    [Fact]
    public async Task Pending_pods_are_bound_where_they_fit_counting_the_pods_already_bound()
    {
        await NodeAsync("n1", "1");
        await NodeAsync("n2", "1");
        // Already bound when the master starts: n2 has 500m left; a finished pod on n1 holds nothing.
        await PodAsync("old", "500m", node: "n2", phase: "Running");
        await PodAsync("done", "1", node: "n1", phase: "Succeeded");
        _loop = _index.RunAsync(_stop.Token);
        await _index.Synced.WaitAsync(Hang);

        var last = await PodAsync("a", "600m");
        await PassAsync(last);
        Assert.Equal("n1", await NodeOfAsync("a"));

        // The next pass counts a on n1 and old on n2, both read through the index: b fits nowhere.
        last = await PodAsync("b", "600m");
        await PassAsync(last);
        Assert.Null(await NodeOfAsync("b"));
        Assert.Equal("Unschedulable", await ScheduledReasonAsync("b"));

        last = await PodAsync("c", "400m");
        await PassAsync(last);
        Assert.Contains(await NodeOfAsync("c"), new[] { "n1", "n2" });
        Assert.Null(await NodeOfAsync("b"));

        // Only the index listed pods, once; the scheduler read pods one by one.
        Assert.Equal(1, _store.Lists("pods"));
    }

    [Fact]
    public async Task A_pod_deleted_or_bound_elsewhere_since_the_index_saw_it_is_left_alone()
    {
        await NodeAsync("n1", "4");
        _loop = _index.RunAsync(_stop.Token);
        await _index.Synced.WaitAsync(Hang);
        await _index.WaitForAsync(await PodAsync("gone", "100m")).WaitAsync(Hang);
        await _index.WaitForAsync(await PodAsync("taken", "100m")).WaitAsync(Hang);

        // The index stops taking events; meanwhile one pod is deleted and the other bound by someone else.
        await _store.WatchCalledAsync(Hang);
        _store.HoldWatches();
        await _store.DeleteAsync(new ObjectKey("pods", "default", "gone"));
        var taken = (await _store.GetAsync(new ObjectKey("pods", "default", "taken")))!;
        taken["spec"]!["nodeName"] = "elsewhere";
        await _store.UpdateAsync(new ObjectKey("pods", "default", "taken"), taken, taken.ResourceVersion());
        Assert.Equal(["gone", "taken"], _index.Pending().Select(p => p.Name).Order(StringComparer.Ordinal));

        await _scheduler.ScheduleAllAsync(CancellationToken.None).WaitAsync(Hang);
        Assert.Null(await _store.GetAsync(new ObjectKey("pods", "default", "gone")));
        Assert.Equal("elsewhere", await NodeOfAsync("taken"));
        _store.ReleaseWatches();
    }
}
