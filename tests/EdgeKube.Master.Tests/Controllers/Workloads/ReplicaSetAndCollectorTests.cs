using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers.Workloads;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

public sealed class ReplicaSetAndCollectorTests : IAsyncLifetime
{
    private const string ReplicaSet = """
        {"metadata": {"name": "rs"},
         "spec": {"replicas": 3, "minReadySeconds": 30, "selector": {"matchLabels": {"app": "rs"}},
                  "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}}}
        """;

    private readonly WorkloadHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Replica_set_creates_its_pods_counts_available_after_min_ready_seconds_and_replaces_lost_pods()
    {
        await _h.CreateAsync("replicasets", ReplicaSet);
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();
        Assert.Equal(3, pods.Count);
        var rs = await _h.GetAsync("replicasets", "rs");
        Assert.All(pods, p => Assert.Equal(rs.Uid(), Pods.ControllerUid(p)));
        Assert.All(pods, p => Assert.Equal("rs", p.Labels()["app"]));

        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        rs = await _h.GetAsync("replicasets", "rs");
        Assert.Equal(3, ControllerLoop.Long(rs["status"]!["readyReplicas"]));
        Assert.Equal(0, ControllerLoop.Long(rs["status"]!["availableReplicas"]));
        Assert.Equal(_h.Time.GetUtcNow().AddSeconds(30), _h.Next);

        _h.Time.Advance(TimeSpan.FromSeconds(30));
        await _h.SyncAsync();
        rs = await _h.GetAsync("replicasets", "rs");
        Assert.Equal(3, ControllerLoop.Long(rs["status"]!["availableReplicas"]));

        // A pod that fails or goes is replaced.
        await _h.FailAsync(pods[0]);
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("pods"), await _h.GetAsync("pods", pods[1].Name()), 0, null, default);
        await _h.SyncAsync();
        Assert.Equal(3, (await _h.ActivePodsAsync()).Count);
    }

    [Fact]
    public async Task Replica_set_adopts_a_matching_orphan_and_leaves_other_pods_alone()
    {
        await _h.CreateAsync("pods", """{"metadata": {"name": "orphan", "labels": {"app": "rs"}}, "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}""");
        await _h.CreateAsync("pods", """{"metadata": {"name": "stranger", "labels": {"app": "other"}}, "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}""");
        await _h.CreateAsync("replicasets", ReplicaSet);
        await _h.SyncAsync();

        var rs = await _h.GetAsync("replicasets", "rs");
        Assert.Equal(rs.Uid(), Pods.ControllerUid(await _h.GetAsync("pods", "orphan")));
        Assert.Null(Pods.ControllerUid(await _h.GetAsync("pods", "stranger")));
        Assert.Equal(3, (await _h.ActivePodsAsync()).Count(p => p.Labels()["app"] == "rs"));
    }

    [Fact]
    public async Task Deleting_an_owner_in_the_background_deletes_its_dependents_down_the_chain()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2));
        await _h.SyncAsync();
        Assert.Single(await _h.ListAsync("replicasets"));

        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("deployments"), await _h.GetAsync("deployments", "web"), null, "Background", default);
        await _h.SyncAsync();
        Assert.Empty(await _h.ListAsync("deployments"));
        Assert.Empty(await _h.ListAsync("replicasets"));
        Assert.Empty(await _h.ActivePodsAsync());
    }

    [Fact]
    public async Task Foreground_deletion_keeps_the_owner_until_its_dependents_are_gone()
    {
        await _h.CreateAsync("deployments", WorkloadHarness.Deployment("web", 2));
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();

        var deleted = await _h.Writer.DeleteAsync(WorkloadHarness.Resource("deployments"), await _h.GetAsync("deployments", "web"), null, "Foreground", default);
        Assert.Contains(ObjectWriter.ForegroundFinalizer, ObjectWriter.Finalizers(deleted));
        Assert.NotNull(deleted.Metadata()["deletionTimestamp"]);
        await _h.SyncAsync();

        // The pods are stopping on their node: the deployment and its replica set wait for them.
        Assert.Single(await _h.ListAsync("deployments"));
        Assert.Single(await _h.ListAsync("replicasets"));
        Assert.Equal(2, (await _h.ListAsync("pods")).Count(Pods.IsTerminating));

        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        Assert.Empty(await _h.ListAsync("pods"));
        Assert.Empty(await _h.ListAsync("replicasets"));
        Assert.Empty(await _h.ListAsync("deployments"));
    }

    [Fact]
    public async Task Orphan_deletion_removes_the_owner_and_leaves_its_pods_without_an_owner()
    {
        await _h.CreateAsync("replicasets", ReplicaSet);
        await _h.SyncAsync();
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("replicasets"), await _h.GetAsync("replicasets", "rs"), null, "Orphan", default);
        await _h.SyncAsync();

        Assert.Empty(await _h.ListAsync("replicasets"));
        var pods = await _h.ActivePodsAsync();
        Assert.Equal(3, pods.Count);
        Assert.All(pods, p => Assert.Null(p.Metadata()["ownerReferences"]));
    }

    [Fact]
    public async Task Objects_with_an_owner_of_an_unknown_kind_are_kept()
    {
        var pod = JsonNode.Parse("""
            {"metadata": {"name": "custom", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "1234", "controller": true}]},
             "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
            """)!.AsObject();
        await _h.Writer.CreateAsync(WorkloadHarness.Resource("pods"), "default", pod, default);
        await _h.SyncAsync();
        Assert.Single(await _h.ListAsync("pods"));
    }

    [Fact]
    public async Task An_owner_the_collector_does_not_list_still_keeps_its_dependents_and_a_gone_one_does_not()
    {
        // The collector lists only pods with owners, finalizers or a deletion: the plain owner pod is not among
        // them, and is looked up before its dependent would be deleted.
        var owner = await _h.Writer.CreateAsync(WorkloadHarness.Resource("pods"), "default", JsonNode.Parse("""
            {"metadata": {"name": "owner"}, "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
            """)!.AsObject(), default);
        var dependent = $$$"""
            {"metadata": {"name": "{0}", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": "{{{owner.Uid()}}}"}]},
             "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
            """;
        await _h.Writer.CreateAsync(WorkloadHarness.Resource("pods"), "default", JsonNode.Parse(dependent.Replace("{0}", "kept", StringComparison.Ordinal))!.AsObject(), default);
        await _h.Writer.CreateAsync(WorkloadHarness.Resource("pods"), "default", JsonNode.Parse(dependent.Replace("{0}", "orphan", StringComparison.Ordinal)
            .Replace(owner.Uid(), "no-such-uid", StringComparison.Ordinal))!.AsObject(), default);
        await _h.SyncAsync();
        await _h.FinishDeletionsAsync();
        Assert.Equal(["kept", "owner"], (await _h.ListAsync("pods")).Select(p => p.Name()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task No_pods_are_created_in_a_terminating_namespace()
    {
        await _h.CreateAsync("replicasets", ReplicaSet.Replace("\"replicas\": 3", "\"replicas\": 0", StringComparison.Ordinal), "other");
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("namespaces"), await _h.GetAsync("namespaces", "other", ""), null, null, default);
        await _h.UpdateSpecAsync("replicasets", "rs", rs => rs["spec"]!["replicas"] = 2, "other");
        await _h.SyncAsync();
        Assert.Empty(await _h.ListAsync("pods", "other"));
    }
}
