using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers.Workloads;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

/// <summary>
/// Proportional scaling during a rollout, pause and resume, minReadySeconds and the revision history limit, on the
/// in-memory store with fake time.
/// </summary>
public sealed class DeploymentScalingTests : IAsyncLifetime
{
    private readonly WorkloadHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static string Rolling(int surge, int unavailable) =>
        $"\"strategy\": {{\"type\": \"RollingUpdate\", \"rollingUpdate\": {{\"maxSurge\": {surge}, \"maxUnavailable\": {unavailable}}}}},";

    private static long Replicas(JsonObject obj) => ControllerLoop.Long(obj["spec"]?["replicas"]);

    private static string? Annotation(JsonObject obj, string name) => obj.Metadata()["annotations"]?[name]?.GetValue<string>();

    private static string? Progressing(JsonObject d, string field) => Pods.Condition(d, "Progressing")?.Str(field);

    private static string Image(JsonObject rs) => rs["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]!.GetValue<string>();

    /// <summary>spec.replicas of each ReplicaSet by its image.</summary>
    private async Task<Dictionary<string, long>> SplitAsync() =>
        (await _h.ListAsync("replicasets")).ToDictionary(Image, Replicas);

    private Task SetImageAsync(string image) =>
        _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["template"]!["spec"]!["containers"]![0]!["image"] = image);

    private Task ScaleAsync(int replicas) => _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["replicas"] = replicas);

    private async Task RolledOutAsync()
    {
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
    }

    /// <summary>Lets the nodes start and stop pods until nothing changes.</summary>
    private async Task SettleAsync(int rounds = 30)
    {
        for (var i = 0; i < rounds; i++)
        {
            await _h.SyncAsync();
            await _h.FinishDeletionsAsync();
            await _h.MarkAllReadyAsync();
        }

        await _h.SyncAsync();
    }

    [Fact]
    public async Task Scaling_in_the_middle_of_a_rollout_shares_the_change_among_the_replica_sets_in_proportion()
    {
        // The example of Kubernetes' documentation: 10 replicas, maxSurge 3, maxUnavailable 2, and a rollout
        // stuck on an image whose pods never become ready.
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 10, strategy: Rolling(3, 2)));
        await RolledOutAsync();
        await SetImageAsync("busybox:broken");
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 8, ["busybox:broken"] = 5 }, await SplitAsync());

        // Scaled to 15: the 5 added (against 15 + 3 = 18) go 3 to the larger set, 2 to the other.
        await ScaleAsync(15);
        await _h.Deployments.SyncAllAsync(default);
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 11, ["busybox:broken"] = 7 }, await SplitAsync());
        Assert.All(await _h.ListAsync("replicasets"), rs =>
        {
            Assert.Equal("15", Annotation(rs, DeploymentController.DesiredReplicasAnnotation));
            Assert.Equal("18", Annotation(rs, DeploymentController.MaxReplicasAnnotation));
        });

        // Nothing else moves while the new pods stay unready; the sets get their pods.
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 11, ["busybox:broken"] = 7 }, await SplitAsync());
        Assert.Equal(18, (await _h.ActivePodsAsync()).Count);

        // Scaled down to 5 (5 + 3 = 8 of 18): the larger set gives up 6, the other 4.
        await ScaleAsync(5);
        await _h.Deployments.SyncAllAsync(default);
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 5, ["busybox:broken"] = 3 }, await SplitAsync());

        // Then the rollout goes on within its bounds, as far as the unready pods let it.
        for (var i = 0; i < 10; i++)
        {
            await _h.SyncAsync();
            await _h.FinishDeletionsAsync();
            var active = await _h.ActivePodsAsync();
            Assert.True(active.Count <= 5 + 3, $"{active.Count} pods");
            Assert.True(active.Count(Pods.IsReady) >= 5 - 2, $"{active.Count(Pods.IsReady)} ready");
        }

        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 3, ["busybox:broken"] = 5 }, await SplitAsync());
    }

    [Fact]
    public void What_rounding_leaves_over_goes_to_the_newest_set_when_growing_and_the_oldest_when_shrinking()
    {
        static JsonObject Set(string name, int minute) => new()
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = name,
                ["creationTimestamp"] = $"2026-05-01T12:0{minute}:00Z",
                ["annotations"] = new JsonObject { [DeploymentController.DesiredReplicasAnnotation] = "2", [DeploymentController.MaxReplicasAnnotation] = "3" },
            },
            ["spec"] = new JsonObject { ["replicas"] = 1 },
        };

        var d = JsonNode.Parse("""{"spec": {"strategy": {"type": "RollingUpdate"}}, "status": {"replicas": 3}}""")!.AsObject();
        var (a, b, c) = (Set("web-a", 1), Set("web-b", 2), Set("web-c", 3));

        // Three equal sets of 1 (deployment 2 + surge 1): one more each rounds to nothing, so the leftover decides.
        var up = DeploymentController.ProportionalSizes(d, c, [a, b], replicas: 3, surge: 1);
        Assert.Equal([("web-c", 2L), ("web-b", 1L), ("web-a", 1L)], up.Select(s => (s.Set.Name(), s.Size)));

        var down = DeploymentController.ProportionalSizes(d, c, [a, b], replicas: 1, surge: 1);
        Assert.Equal([("web-a", 0L), ("web-b", 1L), ("web-c", 1L)], down.Select(s => (s.Set.Name(), s.Size)));

        // Scaling to zero empties every set.
        Assert.All(DeploymentController.ProportionalSizes(d, c, [a, b], replicas: 0, surge: 1), s => Assert.Equal(0, s.Size));

        // Recreate shares nothing out: the sets keep their sizes (and only get the new annotations).
        var recreate = JsonNode.Parse("""{"spec": {"strategy": {"type": "Recreate"}}, "status": {"replicas": 3}}""")!.AsObject();
        Assert.Equal([1L, 1L, 1L], DeploymentController.ProportionalSizes(recreate, c, [a, b], replicas: 5, surge: 0).Select(s => s.Size));

        // With one active set, that one simply takes the new size.
        var empty = Set("web-old", 0);
        empty["spec"]!["replicas"] = 0;
        var only = DeploymentController.ProportionalSizes(d, c, [empty], replicas: 7, surge: 1);
        Assert.Equal([("web-c", 7L)], only.Select(s => (s.Set.Name(), s.Size)));
    }

    [Fact]
    public async Task A_paused_deployment_rolls_nothing_out_but_still_scales_and_resumes_where_it_was()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 4, strategy: Rolling(1, 0)).Replace("\"replicas\": 4,", "\"replicas\": 4, \"progressDeadlineSeconds\": 60,", StringComparison.Ordinal));
        await RolledOutAsync();
        await SetImageAsync("busybox:broken");
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 4, ["busybox:broken"] = 1 }, await SplitAsync());

        // kubectl rollout pause: no new ReplicaSet for a new template.
        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["paused"] = true);
        await _h.SyncAsync();
        var deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("Unknown", Progressing(deployment, "status"));
        Assert.Equal("DeploymentPaused", Progressing(deployment, "reason"));
        Assert.Equal("Deployment is paused", Progressing(deployment, "message"));
        await SetImageAsync("busybox:3");
        await _h.SyncAsync();
        Assert.Equal(2, (await _h.ListAsync("replicasets")).Count);
        Assert.DoesNotContain(await _h.ActivePodsAsync(), p => p["spec"]!["containers"]![0]!["image"]!.GetValue<string>() == "busybox:3");

        // Scaling while paused is proportional: 8 + 1 against the 5 the sets were sized for.
        await ScaleAsync(8);
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 7, ["busybox:broken"] = 2 }, await SplitAsync());

        // However long it stays paused, no deadline passes.
        _h.Time.Advance(TimeSpan.FromMinutes(10));
        await _h.SyncAsync();
        Assert.Equal("DeploymentPaused", Progressing(await _h.GetAsync("deployments", "web"), "reason"));

        // kubectl rollout resume: the new template's set appears and the deadline counts from now.
        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["paused"] = false);
        await _h.SyncAsync();
        Assert.Equal(3, (await _h.ListAsync("replicasets")).Count);
        deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("True", Progressing(deployment, "status"));
        Assert.NotNull(_h.Next);
        Assert.True(_h.Next <= _h.Time.GetUtcNow().AddSeconds(60));

        await SettleAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 0, ["busybox:broken"] = 0, ["busybox:3"] = 8 }, await SplitAsync());
        deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("NewReplicaSetAvailable", Progressing(deployment, "reason"));
        Assert.Equal(8, ControllerLoop.Long(deployment["status"]!["availableReplicas"]));
    }

    [Fact]
    public async Task A_deadline_passed_before_a_pause_stays_reported()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2).Replace("\"replicas\": 2,", "\"replicas\": 2, \"progressDeadlineSeconds\": 60,", StringComparison.Ordinal));
        await _h.SyncAsync();
        _h.Time.Advance(TimeSpan.FromSeconds(60));
        await _h.SyncAsync();
        Assert.Equal("ProgressDeadlineExceeded", Progressing(await _h.GetAsync("deployments", "web"), "reason"));

        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["paused"] = true);
        await _h.SyncAsync();
        Assert.Equal("ProgressDeadlineExceeded", Progressing(await _h.GetAsync("deployments", "web"), "reason"));
    }

    [Fact]
    public async Task New_pods_count_as_available_only_after_min_ready_seconds_and_the_rollout_waits_for_them()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2, strategy: Rolling(1, 0)).Replace("\"replicas\": 2,", "\"replicas\": 2, \"minReadySeconds\": 30,", StringComparison.Ordinal));
        await RolledOutAsync();
        var deployment = await _h.GetAsync("deployments", "web");
        Assert.Null(deployment["status"]!["availableReplicas"]);
        Assert.Equal("MinimumReplicasUnavailable", Pods.Condition(deployment, "Available")?.Str("reason"));
        Assert.Equal(_h.Time.GetUtcNow().AddSeconds(30), _h.Next);

        _h.Time.Advance(TimeSpan.FromSeconds(30));
        await _h.SyncAsync();
        deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal(2, ControllerLoop.Long(deployment["status"]!["availableReplicas"]));
        Assert.Equal("NewReplicaSetAvailable", Progressing(deployment, "reason"));

        // A new pod ready for less than 30 s does not let an old one go.
        await SetImageAsync("busybox:2");
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        _h.Time.Advance(TimeSpan.FromSeconds(29));
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 2, ["busybox:2"] = 1 }, await SplitAsync());
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 1, ["busybox:2"] = 2 }, await SplitAsync());

        // The deployment's minReadySeconds follows to its current ReplicaSet.
        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["minReadySeconds"] = 5);
        await _h.SyncAsync();
        var current = (await _h.ListAsync("replicasets")).Single(rs => Image(rs) == "busybox:2");
        Assert.Equal(5, ControllerLoop.Long(current["spec"]!["minReadySeconds"]));
    }

    [Fact]
    public async Task Old_sets_with_pods_count_toward_the_history_limit_and_a_paused_deployment_cleans_up_too()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2, strategy: Rolling(1, 0)).Replace("\"replicas\": 2,", "\"replicas\": 2, \"revisionHistoryLimit\": 1,", StringComparison.Ordinal));
        await RolledOutAsync();
        await SetImageAsync("busybox:2");
        await SettleAsync(10);
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 0, ["busybox:2"] = 2 }, await SplitAsync());

        // A rollout that cannot finish: busybox:2 keeps its pods, busybox:1 is empty; two old sets, limit one.
        await SetImageAsync("busybox:broken");
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:1"] = 0, ["busybox:2"] = 2, ["busybox:broken"] = 1 }, await SplitAsync());

        // Cleanup waits for a complete rollout, or a pause; then the oldest empty set goes.
        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["paused"] = true);
        await _h.SyncAsync();
        Assert.Equal(new Dictionary<string, long> { ["busybox:2"] = 2, ["busybox:broken"] = 1 }, await SplitAsync());
    }
}
