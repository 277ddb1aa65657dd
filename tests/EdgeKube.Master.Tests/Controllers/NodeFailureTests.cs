using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Bridge;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using EdgeKube.Master.Tests.Store;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Controllers;

/// <summary>Node lifecycle and taint-based eviction on fake time: Kubernetes' 40 s and 300 s run in milliseconds.</summary>
public sealed class NodeFailureTests : IAsyncLifetime
{
    // A guard against a hung test, not a timing assertion: the index applies each change at once.
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(30);

    private readonly RecordingObjectStore _store = new(new InMemoryObjectStore());
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly Dictionary<string, NodeLiveness> _heard = new(StringComparer.Ordinal);
    private readonly List<string> _deleted = [];
    private readonly PodNodeIndex _pods;
    private readonly CancellationTokenSource _stop = new();
    private Task _index = Task.CompletedTask;

    // The resourceVersion of the test's last pod write: the index must hold it before a step, or the step would race the index.
    private long _podWritten;

    private NodeLifecycleController? _lifecycle;

    public NodeFailureTests()
    {
        _pods = new PodNodeIndex(_store, NullLogger<PodNodeIndex>.Instance);
        Lifecycle();
    }

    public async Task InitializeAsync()
    {
        _index = _pods.RunAsync(_stop.Token);
        await _pods.Synced.WaitAsync(Hang);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _store.ReleaseWatches();
        await _index.WaitAsync(Hang);
        await _store.DisposeAsync();
        _stop.Dispose();
    }

    // One controller for the whole test: it counts the grace period from its own start, as kube-controller-manager does.
    private NodeLifecycleController Lifecycle() => _lifecycle ??=
        new(_store, _pods, () => _heard, new EventRecorder(_store, _time), TimeSpan.FromSeconds(40), _time, NullLogger<NodeLifecycleController>.Instance);

    private TaintEvictionController Eviction() =>
        new(_store, _pods, DeleteAsync, new EventRecorder(_store, _time), _time, NullLogger<TaintEvictionController>.Instance);

    /// <summary>What the API server does to a bound pod: marks it; the node finishes it. Only what the store took counts as deleted.</summary>
    private async Task DeleteAsync(JsonObject pod, CancellationToken cancellationToken)
    {
        pod.Metadata()["deletionTimestamp"] = ObjectMeta.Time(_time.GetUtcNow());
        PodWritten(await _store.UpdateAsync(new ObjectKey("pods", pod.Namespace(), pod.Name()), pod, pod.ResourceVersion(), cancellationToken));
        _deleted.Add(pod.Name());
    }

    private void PodWritten(JsonObject pod) => _podWritten = Math.Max(_podWritten, pod.ResourceVersion());

    private Task AddNodeAsync(string name, bool autonomy = false)
    {
        var node = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Node",
            ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = name, ["annotations"] = new JsonObject() },
            ["spec"] = new JsonObject(),
            ["status"] = new JsonObject { ["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = "True", ["reason"] = "KubeletReady" }) },
        };
        if (autonomy)
        {
            node["metadata"]!["annotations"]![TaintEvictionController.AutonomyAnnotation] = "true";
        }

        _heard[name] = new NodeLiveness(_time.GetUtcNow(), _time.GetUtcNow(), false);
        return _store.CreateAsync(new ObjectKey("nodes", string.Empty, name), node);
    }

    /// <summary>A pod as the API server stores it (default tolerations added), bound and Ready.</summary>
    private async Task AddPodAsync(string name, string node, JsonArray? tolerations = null)
    {
        var pod = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default", ["uid"] = name },
            ["spec"] = new JsonObject
            {
                ["nodeName"] = node,
                ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "busybox" }),
            },
        };
        if (tolerations is not null)
        {
            pod["spec"]!["tolerations"] = tolerations;
        }

        PodRules.ApplyDefaults(pod);
        pod["status"]!["phase"] = "Running";
        pod["status"]!["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = "True" });
        PodWritten(await _store.CreateAsync(new ObjectKey("pods", "default", name), pod));
    }

    private static JsonArray Tolerate(long? seconds) =>
    [
        new JsonObject { ["key"] = "node.kubernetes.io/unreachable", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = seconds },
        new JsonObject { ["key"] = "node.kubernetes.io/not-ready", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = seconds },
    ];

    private async Task<JsonObject> NodeAsync(string name) => (await _store.GetAsync(new ObjectKey("nodes", string.Empty, name)))!;

    private async Task<string?> PodReadyAsync(string name) =>
        ((await _store.GetAsync(new ObjectKey("pods", "default", name)))!["status"]!["conditions"] as JsonArray)!
            .OfType<JsonObject>().First(c => c.Str("type") == "Ready").Str("status");

    private async Task StepAsync(TimeSpan by)
    {
        await _pods.WaitForAsync(_podWritten).WaitAsync(Hang);
        _time.Advance(by);
        await Lifecycle().CheckAllAsync(CancellationToken.None);
        await Eviction().SweepAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_silent_node_goes_unknown_after_the_grace_period_its_pods_unready_then_evicted_after_300_seconds()
    {
        await AddNodeAsync("board");
        await AddPodAsync("default-tolerations", "board");
        await AddPodAsync("short", "board", Tolerate(30));
        await AddPodAsync("forever", "board", Tolerate(null));

        await StepAsync(TimeSpan.FromSeconds(39));
        Assert.Equal("True", (await NodeAsync("board"))["status"]!["conditions"]![0]!["status"]!.GetValue<string>());
        Assert.Equal("True", await PodReadyAsync("short"));

        await StepAsync(TimeSpan.FromSeconds(2));
        var node = await NodeAsync("board");
        var ready = (node["status"]!["conditions"] as JsonArray)!.OfType<JsonObject>().First(c => c.Str("type") == "Ready");
        Assert.Equal("Unknown", ready.Str("status"));
        Assert.Equal("NodeStatusUnknown", ready.Str("reason"));
        var taints = (node["spec"]!["taints"] as JsonArray)!.OfType<JsonObject>().Select(t => $"{t.Str("key")}:{t.Str("effect")}").ToList();
        Assert.Equal(["node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"], taints);
        Assert.Equal("False", await PodReadyAsync("default-tolerations"));
        Assert.Equal("False", await PodReadyAsync("short"));
        Assert.Empty(_deleted);

        await StepAsync(TimeSpan.FromSeconds(29));
        Assert.Empty(_deleted);
        await StepAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(["short"], _deleted);

        await StepAsync(TimeSpan.FromSeconds(300 - 32 - 1));
        Assert.Equal(["short"], _deleted);
        await StepAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(["short", "default-tolerations"], _deleted);

        await StepAsync(TimeSpan.FromDays(30));
        Assert.Equal(["short", "default-tolerations"], _deleted);
        var events = (await _store.ListAsync("events", "default")).Items;
        Assert.Contains(events, e => e.Str("reason") == "TaintManagerEviction" && e.Str("message") == "Marking for deletion Pod default/short");
    }

    [Fact]
    public async Task With_its_session_open_a_node_holds_the_lease_it_declared_and_the_grace_period_still_bounds_a_shorter_one()
    {
        // A node on the defaults: lease of 600 s, renewed every 150 s, session open (presence online).
        await AddNodeAsync("board");
        _heard["board"] = _heard["board"] with { LeaseDuration = TimeSpan.FromSeconds(600) };
        // A node that declared a lease shorter than the grace period: the grace period holds.
        await AddNodeAsync("quick");
        _heard["quick"] = _heard["quick"] with { LeaseDuration = TimeSpan.FromSeconds(4) };
        // A node never heard through a lease: the grace period, as kube-controller-manager.
        await AddNodeAsync("plain");

        await StepAsync(TimeSpan.FromSeconds(39));
        Assert.Equal("True", await ReadyAsync("quick"));
        await StepAsync(TimeSpan.FromSeconds(2));
        Assert.Equal("Unknown", await ReadyAsync("quick"));
        Assert.Equal("Unknown", await ReadyAsync("plain"));
        Assert.Equal("True", await ReadyAsync("board"));

        // Renewed within its duration, the node stays Ready however long it is silent in between.
        await StepAsync(TimeSpan.FromSeconds(100));
        _heard["board"] = _heard["board"] with { LastLease = _time.GetUtcNow() };
        await StepAsync(TimeSpan.FromSeconds(599));
        Assert.Equal("True", await ReadyAsync("board"));

        // Not renewed for the whole duration: the backstop makes it Unknown.
        await StepAsync(TimeSpan.FromSeconds(2));
        Assert.Equal("Unknown", await ReadyAsync("board"));

        // The will still says offline at once, whatever the lease.
        await AddNodeAsync("gone");
        _heard["gone"] = _heard["gone"] with { LeaseDuration = TimeSpan.FromSeconds(600), Offline = true };
        await StepAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("Unknown", await ReadyAsync("gone"));
    }

    private async Task<string?> ReadyAsync(string node) =>
        ((await NodeAsync(node))["status"]!["conditions"] as JsonArray)!.OfType<JsonObject>().First(c => c.Str("type") == "Ready").Str("status");

    [Fact]
    public async Task An_offline_will_makes_the_node_unknown_at_once_and_the_autonomy_annotation_keeps_its_pods()
    {
        await AddNodeAsync("greenhouse", autonomy: true);
        await AddNodeAsync("shed");
        await AddPodAsync("sensor", "greenhouse", Tolerate(0));
        await AddPodAsync("logger", "shed", Tolerate(0));

        _heard["greenhouse"] = _heard["greenhouse"] with { Offline = true };
        _heard["shed"] = _heard["shed"] with { Offline = true };
        await StepAsync(TimeSpan.FromSeconds(1));
        Assert.Contains("unreachable", (await NodeAsync("greenhouse"))["spec"]!["taints"]!.ToJsonString());
        Assert.Equal(["logger"], _deleted);
        Assert.Equal("False", await PodReadyAsync("sensor"));

        await StepAsync(TimeSpan.FromDays(1));
        Assert.Equal(["logger"], _deleted);

        // Back (a lease; its status did not change meanwhile, so it sends none): what it last reported holds again, the taints go.
        _heard["greenhouse"] = new NodeLiveness(_time.GetUtcNow(), null, false)
        {
            ReportedStatus = JsonNode.Parse("""{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}""")!.AsObject(),
        };
        await StepAsync(TimeSpan.FromSeconds(1));
        var back = await NodeAsync("greenhouse");
        Assert.Null(back["spec"]!["taints"]);
        Assert.Equal("KubeletReady", back["status"]!["conditions"]![0]!["reason"]!.GetValue<string>());
        Assert.Contains("unreachable", (await NodeAsync("shed"))["spec"]!["taints"]!.ToJsonString());
    }

    [Fact]
    public async Task A_node_reporting_not_ready_gets_the_not_ready_taints_and_untolerating_pods_go_at_once()
    {
        await AddNodeAsync("board");
        var pod = new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "bare", ["namespace"] = "default", ["uid"] = "bare" },
            ["spec"] = new JsonObject { ["nodeName"] = "board", ["tolerations"] = new JsonArray() },
            ["status"] = new JsonObject(),
        };
        PodWritten(await _store.CreateAsync(new ObjectKey("pods", "default", "bare"), pod));
        var node = await NodeAsync("board");
        node["status"]!["conditions"]![0]!["status"] = "False";
        await _store.UpdateAsync(new ObjectKey("nodes", string.Empty, "board"), node, node.ResourceVersion());

        await StepAsync(TimeSpan.FromSeconds(1));
        Assert.Contains("node.kubernetes.io/not-ready", (await NodeAsync("board"))["spec"]!["taints"]!.ToJsonString());
        Assert.Equal(["bare"], _deleted);
    }

    [Fact]
    public async Task Pods_of_a_removed_node_are_deleted_after_the_quarantine()
    {
        await AddNodeAsync("gone");
        await AddNodeAsync("stays");
        await AddPodAsync("orphan", "gone");
        await AddPodAsync("kept", "stays");
        await AddPodAsync("early", "not-registered-yet");
        await StepAsync(TimeSpan.FromSeconds(1));
        await _store.DeleteAsync(new ObjectKey("nodes", string.Empty, "gone"));
        await StepAsync(TimeSpan.FromSeconds(1));

        // The early pod's node registers within the quarantine: it stays.
        await StepAsync(TimeSpan.FromSeconds(20));
        await AddNodeAsync("not-registered-yet");
        await StepAsync(TimeSpan.FromSeconds(19));
        Assert.NotNull(await _store.GetAsync(new ObjectKey("pods", "default", "orphan")));
        await StepAsync(TimeSpan.FromSeconds(2));
        Assert.Null(await _store.GetAsync(new ObjectKey("pods", "default", "orphan")));
        Assert.NotNull(await _store.GetAsync(new ObjectKey("pods", "default", "kept")));
        Assert.NotNull(await _store.GetAsync(new ObjectKey("pods", "default", "early")));
    }

    [Fact]
    public async Task Passes_find_pods_through_the_index_and_write_the_copy_the_store_has_now()
    {
        await AddNodeAsync("board");
        await AddPodAsync("web", "board", Tolerate(0));
        await AddPodAsync("lost", "removed");
        await StepAsync(TimeSpan.FromSeconds(1));

        // The index falls behind: the version of "web" it holds is older than the store's.
        _store.HoldWatches();
        var key = new ObjectKey("pods", "default", "web");
        var web = (await _store.GetAsync(key))!;
        web["status"]!["podIP"] = "10.244.0.5";
        await _store.UpdateAsync(key, web, web.ResourceVersion());

        _heard["board"] = _heard["board"] with { Offline = true };
        _time.Advance(TimeSpan.FromSeconds(1));
        await Lifecycle().CheckAllAsync(CancellationToken.None);
        await Eviction().SweepAsync(CancellationToken.None);

        // Marked not ready, then evicted, each written from a fresh copy: the index's version would have conflicted.
        var stored = (await _store.GetAsync(key))!;
        Assert.Equal("False", await PodReadyAsync("web"));
        Assert.Equal(["web"], _deleted);
        Assert.NotNull(stored.Metadata()["deletionTimestamp"]);
        Assert.Equal("10.244.0.5", stored["status"]!["podIP"]!.GetValue<string>());

        // The orphan goes after its quarantine (seen first at the step above).
        _time.Advance(TimeSpan.FromSeconds(40));
        await Lifecycle().CheckAllAsync(CancellationToken.None);
        Assert.Null(await _store.GetAsync(new ObjectKey("pods", "default", "lost")));

        // No pass listed the pods: only the index did, once.
        Assert.Equal(1, _store.Lists("pods"));
    }

    [Fact]
    public void The_eviction_time_is_the_earliest_taint_plus_its_smallest_matching_toleration()
    {
        var now = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var unreachable = new V1Taint { Key = "node.kubernetes.io/unreachable", Effect = "NoExecute", TimeAdded = now.UtcDateTime.AddSeconds(-100) };
        var custom = new V1Taint { Key = "maintenance", Value = "soon", Effect = "NoExecute", TimeAdded = now.UtcDateTime };
        V1Toleration T(string? key, long? seconds, string op = "Exists", string? value = null) =>
            new() { Key = key, OperatorProperty = op, Value = value, Effect = "NoExecute", TolerationSeconds = seconds };

        Assert.Equal(now, TaintEvictionController.EvictionTime([unreachable], [], now));
        Assert.Equal(now.AddSeconds(200), TaintEvictionController.EvictionTime([unreachable], [T("node.kubernetes.io/unreachable", 300)], now));
        Assert.Equal(now.AddSeconds(-40), TaintEvictionController.EvictionTime([unreachable], [T("node.kubernetes.io/unreachable", 300), T(null, 60)], now));
        Assert.Null(TaintEvictionController.EvictionTime([unreachable], [T("node.kubernetes.io/unreachable", null)], now));
        Assert.Equal(now, TaintEvictionController.EvictionTime([unreachable, custom], [T("node.kubernetes.io/unreachable", null)], now));
        Assert.Equal(now.AddSeconds(10), TaintEvictionController.EvictionTime([unreachable, custom], [T("node.kubernetes.io/unreachable", null), T("maintenance", 10, "Equal", "soon")], now));
        Assert.Equal(now, TaintEvictionController.EvictionTime([custom], [T("maintenance", 10, "Equal", "later")], now));
    }

    [Fact]
    public void The_api_server_adds_the_default_tolerations_unless_the_pod_has_its_own()
    {
        var pod = new JsonObject { ["spec"] = new JsonObject { ["containers"] = new JsonArray() } };
        PodRules.ApplyDefaults(pod);
        var tolerations = pod["spec"]!["tolerations"]!.ToJsonString();
        Assert.Contains("""{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}""", tolerations);
        Assert.Contains("""{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}""", tolerations);

        var own = new JsonObject { ["spec"] = new JsonObject { ["tolerations"] = Tolerate(5) } };
        PodRules.ApplyDefaults(own);
        Assert.Equal(2, own["spec"]!["tolerations"]!.AsArray().Count);

        var everything = new JsonObject { ["spec"] = new JsonObject { ["tolerations"] = new JsonArray(new JsonObject { ["operator"] = "Exists" }) } };
        PodRules.ApplyDefaults(everything);
        Assert.Single(everything["spec"]!["tolerations"]!.AsArray());
    }
}
