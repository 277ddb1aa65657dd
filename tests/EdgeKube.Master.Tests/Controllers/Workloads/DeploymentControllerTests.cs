using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers.Workloads;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

public sealed class DeploymentControllerTests : IAsyncLifetime
{
    private readonly WorkloadHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<List<JsonObject>> SetsAsync() => (await _h.ListAsync("replicasets")).OrderBy(DeploymentController.Revision).ToList();

    private static long Replicas(JsonObject obj) => ControllerLoop.Long(obj["spec"]?["replicas"]);

    private static string? Condition(JsonObject d, string type, string field) => Pods.Condition(d, type)?.Str(field);

    private Task SetImageAsync(string image) =>
        _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["template"]!["spec"]!["containers"]![0]!["image"] = image);

    [Fact]
    public async Task New_deployment_gets_one_replica_set_of_its_template_and_its_pods()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 3));
        await _h.SyncAsync();

        var rs = Assert.Single(await SetsAsync());
        var hash = rs["spec"]!["template"]!["metadata"]!["labels"]![DeploymentController.HashLabel]!.GetValue<string>();
        Assert.Equal($"web-{hash}", rs.Name());
        Assert.Equal(3, Replicas(rs));
        Assert.Equal("1", rs.Metadata()["annotations"]![DeploymentController.RevisionAnnotation]!.GetValue<string>());
        Assert.Equal(hash, rs["spec"]!["selector"]!["matchLabels"]![DeploymentController.HashLabel]!.GetValue<string>());
        var deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal(deployment.Uid(), Pods.ControllerUid(rs));
        Assert.Equal("1", deployment.Metadata()["annotations"]![DeploymentController.RevisionAnnotation]!.GetValue<string>());

        var pods = await _h.ActivePodsAsync();
        Assert.Equal(3, pods.Count);
        Assert.All(pods, p =>
        {
            Assert.Equal(rs.Uid(), Pods.ControllerUid(p));
            Assert.StartsWith(rs.Name() + "-", p.Name());
            Assert.Equal(hash, p.Labels()[DeploymentController.HashLabel]);
            Assert.Equal("Always", p["spec"]!["restartPolicy"]!.GetValue<string>());
        });

        // Not ready yet: progressing (the set was created, then its pods), not available.
        deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("False", Condition(deployment, "Available", "status"));
        Assert.Equal("MinimumReplicasUnavailable", Condition(deployment, "Available", "reason"));
        Assert.Equal("ReplicaSetUpdated", Condition(deployment, "Progressing", "reason"));
        Assert.Equal($"ReplicaSet \"{rs.Name()}\" is progressing.", Condition(deployment, "Progressing", "message"));

        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal(3, ControllerLoop.Long(deployment["status"]!["availableReplicas"]));
        Assert.Equal(3, ControllerLoop.Long(deployment["status"]!["updatedReplicas"]));
        Assert.Equal(1, ControllerLoop.Long(deployment["status"]!["observedGeneration"]));
        Assert.Equal("True", Condition(deployment, "Available", "status"));
        Assert.Equal("MinimumReplicasAvailable", Condition(deployment, "Available", "reason"));
        Assert.Equal("NewReplicaSetAvailable", Condition(deployment, "Progressing", "reason"));
        Assert.Equal($"ReplicaSet \"{(await SetsAsync())[0].Name()}\" has successfully progressed.", Condition(deployment, "Progressing", "message"));
    }

    [Theory]
    [InlineData(4, "1", "0")]
    [InlineData(4, "0", "2")]
    [InlineData(5, "25%", "25%")]
    [InlineData(3, "100%", "0")]
    public async Task Rolling_update_stays_within_max_surge_and_max_unavailable(int replicas, string surge, string unavailable)
    {
        static string IntOrString(string v) => v.EndsWith('%') ? $"\"{v}\"" : v;
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", replicas,
            strategy: "\"strategy\": {\"type\": \"RollingUpdate\", \"rollingUpdate\": {\"maxSurge\": " + IntOrString(surge) + ", \"maxUnavailable\": " + IntOrString(unavailable) + "}},"));
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        var spec = (await _h.GetAsync("deployments", "web"))["spec"]!.AsObject();
        var (maxSurge, maxUnavailable) = DeploymentController.Limits(spec, replicas);

        await SetImageAsync("busybox:2");
        for (var step = 0; step < 50; step++)
        {
            await _h.SyncAsync();
            var active = await _h.ActivePodsAsync();
            Assert.True(active.Count <= replicas + maxSurge, $"{active.Count} pods, more than {replicas} + surge {maxSurge}");
            Assert.True(active.Count(Pods.IsReady) >= replicas - maxUnavailable, $"only {active.Count(Pods.IsReady)} ready, fewer than {replicas} - {maxUnavailable}");
            if (active.Count == replicas && active.All(p => Pods.IsReady(p) && p["spec"]!["containers"]![0]!["image"]!.GetValue<string>() == "busybox:2"))
            {
                break;
            }

            // The nodes: new pods start, deleted pods stop.
            await _h.FinishDeletionsAsync();
            await _h.MarkAllReadyAsync();
        }

        await _h.SyncAsync();
        var sets = await SetsAsync();
        Assert.Equal(2, sets.Count);
        Assert.Equal(0, Replicas(sets[0]));
        Assert.Equal(replicas, Replicas(sets[1]));
        Assert.Equal("2", sets[1].Metadata()["annotations"]![DeploymentController.RevisionAnnotation]!.GetValue<string>());
        var deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("2", deployment.Metadata()["annotations"]![DeploymentController.RevisionAnnotation]!.GetValue<string>());
        Assert.Equal(replicas, ControllerLoop.Long(deployment["status"]!["updatedReplicas"]));
        Assert.Equal("NewReplicaSetAvailable", Condition(deployment, "Progressing", "reason"));
    }

    [Fact]
    public async Task Going_back_to_an_old_template_reuses_its_replica_set_under_the_next_revision()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2));
        await _h.SyncAsync();
        var first = (await SetsAsync())[0].Name();
        await SetImageAsync("busybox:2");
        await _h.SyncAsync();

        // What kubectl rollout undo sends: the old ReplicaSet's template, without its hash label.
        await _h.UpdateSpecAsync("deployments", "web", d =>
            d["spec"]!["template"]!["spec"]!["containers"]![0]!["image"] = "busybox:1");
        await _h.SyncAsync();

        var sets = await SetsAsync();
        Assert.Equal(2, sets.Count);
        var reused = await _h.GetAsync("replicasets", first);
        Assert.Equal(3, DeploymentController.Revision(reused));
        Assert.Equal("1", reused.Metadata()["annotations"]![DeploymentController.RevisionHistoryAnnotation]!.GetValue<string>());
        Assert.Equal("3", (await _h.GetAsync("deployments", "web")).Metadata()["annotations"]![DeploymentController.RevisionAnnotation]!.GetValue<string>());
    }

    [Fact]
    public async Task Old_replica_sets_beyond_the_revision_history_limit_are_deleted()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 1).Replace("\"replicas\": 1,", "\"replicas\": 1, \"revisionHistoryLimit\": 1,", StringComparison.Ordinal));
        foreach (var image in new[] { "busybox:2", "busybox:3", "busybox:4" })
        {
            await _h.SyncAsync();
            await _h.MarkAllReadyAsync();
            await _h.SyncAsync();
            await SetImageAsync(image);
            for (var i = 0; i < 5; i++)
            {
                await _h.SyncAsync();
                await _h.FinishDeletionsAsync();
                await _h.MarkAllReadyAsync();
            }
        }

        await _h.SyncAsync();
        var sets = await SetsAsync();
        Assert.Equal([3L, 4L], sets.Select(DeploymentController.Revision));
    }

    [Fact]
    public async Task A_rollout_that_makes_no_progress_exceeds_its_deadline_on_fake_time()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2).Replace("\"replicas\": 2,", "\"replicas\": 2, \"progressDeadlineSeconds\": 60,", StringComparison.Ordinal));
        await _h.SyncAsync();
        Assert.Equal(_h.Time.GetUtcNow().AddSeconds(60), _h.Next);

        _h.Time.Advance(TimeSpan.FromSeconds(59));
        await _h.SyncAsync();
        Assert.Equal("True", Condition(await _h.GetAsync("deployments", "web"), "Progressing", "status"));

        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.SyncAsync();
        var deployment = await _h.GetAsync("deployments", "web");
        Assert.Equal("False", Condition(deployment, "Progressing", "status"));
        Assert.Equal("ProgressDeadlineExceeded", Condition(deployment, "Progressing", "reason"));
        Assert.Equal($"ReplicaSet \"{(await SetsAsync())[0].Name()}\" has timed out progressing.", Condition(deployment, "Progressing", "message"));

        // Progress afterwards lifts it.
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        Assert.Equal("NewReplicaSetAvailable", Condition(await _h.GetAsync("deployments", "web"), "Progressing", "reason"));
    }

    [Fact]
    public async Task Recreate_removes_every_old_pod_before_starting_new_ones()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 3, strategy: "\"strategy\": {\"type\": \"Recreate\"},"));
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        Assert.Null((await _h.GetAsync("deployments", "web"))["spec"]!["strategy"]!["rollingUpdate"]);

        await SetImageAsync("busybox:2");
        await _h.SyncAsync();
        var sets = await SetsAsync();
        Assert.Equal(2, sets.Count);
        Assert.Equal([0L, 0L], sets.Select(Replicas));
        Assert.Empty(await _h.ActivePodsAsync());

        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();
        Assert.Equal(3, pods.Count);
        Assert.All(pods, p => Assert.Equal("busybox:2", p["spec"]!["containers"]![0]!["image"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Scaling_the_deployment_scales_its_replica_set_and_deletes_unready_pods_first()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 3));
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();
        await _h.MarkReadyAsync(pods[0]);
        await _h.MarkReadyAsync(pods[1]);

        await _h.UpdateSpecAsync("deployments", "web", d => d["spec"]!["replicas"] = 2);
        await _h.SyncAsync();
        var left = await _h.ActivePodsAsync();
        Assert.Equal(2, left.Count);
        Assert.All(left, p => Assert.True(Pods.IsReady(p)));
        Assert.Equal(2, Replicas((await SetsAsync())[0]));
        Assert.Equal(2, ControllerLoop.Long((await _h.GetAsync("deployments", "web"))["status"]!["observedGeneration"]));
    }
}
