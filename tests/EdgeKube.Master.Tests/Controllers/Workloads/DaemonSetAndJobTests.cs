using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers.Workloads;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

public sealed class DaemonSetAndJobTests : IAsyncLifetime
{
    private const string DaemonSet = """
        {"metadata": {"name": "collector"},
         "spec": {"selector": {"matchLabels": {"app": "collector"}},
                  "template": {"metadata": {"labels": {"app": "collector"}},
                               "spec": {"nodeSelector": {"edgekube.io/sensor": "yes"}, "containers": [{"name": "app", "image": "collector:1"}]}}}}
        """;

    private readonly WorkloadHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task AddNodeAsync(string name, string labels = """{"edgekube.io/sensor": "yes"}""", string taints = "[]")
    {
        var node = JsonNode.Parse("""{"metadata": {"name": "NAME", "labels": LABELS}, "spec": {"taints": TAINTS}}""".Replace("NAME", name, StringComparison.Ordinal).Replace("LABELS", labels, StringComparison.Ordinal).Replace("TAINTS", taints, StringComparison.Ordinal))!.AsObject();
        await _h.Writer.CreateObjectAsync(WorkloadHarness.Resource("nodes"), node, default);
    }

    private static string Job(string spec, string restartPolicy = "Never") => """
        {"metadata": {"name": "job"},
         "spec": {SPEC "template": {"spec": {"restartPolicy": "POLICY", "containers": [{"name": "app", "image": "busybox:1"}]}}}}
        """.Replace("SPEC", spec, StringComparison.Ordinal).Replace("POLICY", restartPolicy, StringComparison.Ordinal);

    private static string? Nodes(IEnumerable<JsonObject> pods) => string.Join(",", pods.Select(p => p["spec"]?["nodeName"]?.GetValue<string>()).Order(StringComparer.Ordinal));

    [Fact]
    public async Task Daemon_set_runs_one_pod_bound_to_each_matching_node_and_follows_node_changes()
    {
        await AddNodeAsync("pi-1");
        await AddNodeAsync("pi-2", taints: """[{"key": "dedicated", "value": "camera", "effect": "NoSchedule"}]""");
        await AddNodeAsync("pi-3", labels: """{"edgekube.io/sensor": "no"}""");
        // NotReady and cordoned nodes keep their daemon pods: daemon pods tolerate that.
        await AddNodeAsync("pi-4", taints: """[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]""");
        await _h.CreateAsync("daemonsets", DaemonSet);
        await _h.SyncAsync();

        var pods = await _h.ActivePodsAsync();
        Assert.Equal("pi-1,pi-4", Nodes(pods));
        Assert.All(pods, p => Assert.Equal("True", Pods.Condition(p, "PodScheduled")?.Str("status")));
        Assert.All(pods, p => Assert.Contains((p["spec"]!["tolerations"] as JsonArray)!.OfType<JsonObject>(), t => t.Str("key") == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] is null));
        var ds = await _h.GetAsync("daemonsets", "collector");
        Assert.Equal(2, ControllerLoop.Long(ds["status"]!["desiredNumberScheduled"]));
        Assert.Equal(2, ControllerLoop.Long(ds["status"]!["currentNumberScheduled"]));

        // A new board gets its pod; a board whose label goes loses it; a failed pod is replaced.
        await AddNodeAsync("pi-5");
        var pi1 = await _h.GetAsync("nodes", "pi-1", "");
        pi1.Metadata()["labels"]!["edgekube.io/sensor"] = "no";
        await _h.Store.UpdateAsync(new ObjectKey("nodes", "", "pi-1"), pi1);
        await _h.SyncAsync();
        Assert.Equal("pi-4,pi-5", Nodes(await _h.ActivePodsAsync()));
        await _h.FinishDeletionsAsync();

        var onPi5 = (await _h.ActivePodsAsync()).Single(p => p["spec"]!["nodeName"]!.GetValue<string>() == "pi-5");
        await _h.FailAsync(onPi5);
        await _h.SyncAsync();
        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        var replaced = (await _h.ActivePodsAsync()).Single(p => p["spec"]!["nodeName"]!.GetValue<string>() == "pi-5");
        Assert.NotEqual(onPi5.Name(), replaced.Name());
    }

    [Fact]
    public async Task Daemon_set_template_change_rolls_one_node_at_a_time()
    {
        foreach (var n in new[] { "pi-1", "pi-2", "pi-3" })
        {
            await AddNodeAsync(n);
        }

        await _h.CreateAsync("daemonsets", DaemonSet);
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();

        await _h.UpdateSpecAsync("daemonsets", "collector", ds => ds["spec"]!["template"]!["spec"]!["containers"]![0]!["image"] = "collector:2");
        for (var step = 0; step < 10; step++)
        {
            await _h.SyncAsync();
            var pods = await _h.ListAsync("pods");
            var down = 3 - pods.Count(p => Pods.IsActive(p) && Pods.IsReady(p));
            Assert.True(down <= 1, $"{down} nodes without a ready pod at once");
            if (pods.Count(p => Pods.IsActive(p) && Pods.IsReady(p) && p["spec"]!["containers"]![0]!["image"]!.GetValue<string>() == "collector:2") == 3)
            {
                break;
            }

            await _h.FinishDeletionsAsync();
            await _h.SyncAsync();
            await _h.MarkAllReadyAsync();
        }

        await _h.SyncAsync();
        var ds = await _h.GetAsync("daemonsets", "collector");
        Assert.Equal(3, ControllerLoop.Long(ds["status"]!["updatedNumberScheduled"]));
        Assert.Equal(3, ControllerLoop.Long(ds["status"]!["numberAvailable"]));
    }

    [Fact]
    public async Task Job_runs_parallel_pods_until_its_completions_succeed()
    {
        var created = await _h.CreateAsync("jobs", Job("\"completions\": 3, \"parallelism\": 2,"));
        Assert.Equal(created.Uid(), created["spec"]!["selector"]!["matchLabels"]![WorkloadRules.JobControllerUid]!.GetValue<string>());
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();
        Assert.Equal(2, pods.Count);
        Assert.All(pods, p => Assert.Equal("job", p.Labels()[WorkloadRules.JobName]));

        await _h.SucceedAsync(pods[0]);
        await _h.SucceedAsync(pods[1]);
        await _h.SyncAsync();
        pods = await _h.ActivePodsAsync();
        Assert.Single(pods);
        var job = await _h.GetAsync("jobs", "job");
        Assert.Equal(2, ControllerLoop.Long(job["status"]!["succeeded"]));
        Assert.Equal(1, ControllerLoop.Long(job["status"]!["active"]));

        await _h.SucceedAsync(pods[0]);
        await _h.SyncAsync();
        job = await _h.GetAsync("jobs", "job");
        Assert.Equal("True", Pods.Condition(job, "Complete")?.Str("status"));
        Assert.NotNull(job["status"]!["completionTime"]);
        Assert.Equal(3, ControllerLoop.Long(job["status"]!["succeeded"]));
        Assert.Empty(await _h.ActivePodsAsync());
        Assert.Equal(3, (await _h.ListAsync("pods")).Count);
    }

    [Fact]
    public async Task Job_waits_its_back_off_after_a_failure_and_fails_past_the_backoff_limit()
    {
        await _h.CreateAsync("jobs", Job("\"backoffLimit\": 1,"));
        await _h.SyncAsync();
        await _h.FailAsync(Assert.Single(await _h.ActivePodsAsync()));
        await _h.SyncAsync();

        // First failure: 10 s before the next pod.
        Assert.Empty(await _h.ActivePodsAsync());
        Assert.Equal(_h.Time.GetUtcNow() + JobController.Backoff(1), _h.Next);
        _h.Time.Advance(TimeSpan.FromSeconds(9));
        await _h.SyncAsync();
        Assert.Empty(await _h.ActivePodsAsync());
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.SyncAsync();
        var second = Assert.Single(await _h.ActivePodsAsync());

        await _h.FailAsync(second);
        await _h.SyncAsync();
        var job = await _h.GetAsync("jobs", "job");
        var failed = Pods.Condition(job, "Failed");
        Assert.Equal("True", failed?.Str("status"));
        Assert.Equal("BackoffLimitExceeded", failed?.Str("reason"));
        Assert.Equal("Job has reached the specified backoff limit", failed?.Str("message"));
        Assert.Equal(2, ControllerLoop.Long(job["status"]!["failed"]));
        _h.Time.Advance(TimeSpan.FromMinutes(10));
        await _h.SyncAsync();
        Assert.Empty(await _h.ActivePodsAsync());
    }

    [Fact]
    public void Job_back_off_doubles_up_to_six_minutes()
    {
        Assert.Equal([10, 20, 40, 80, 160, 320, 360, 360], Enumerable.Range(1, 8).Select(n => (int)JobController.Backoff(n).TotalSeconds));
    }

    [Fact]
    public async Task Job_restarts_count_toward_the_backoff_limit_with_restart_policy_on_failure()
    {
        await _h.CreateAsync("jobs", Job("\"backoffLimit\": 2,", "OnFailure"));
        await _h.SyncAsync();
        var pod = Assert.Single(await _h.ActivePodsAsync());
        await _h.MarkReadyAsync(pod);
        pod = await _h.GetAsync("pods", pod.Name());
        pod["status"]!["containerStatuses"] = new JsonArray(new JsonObject { ["name"] = "app", ["restartCount"] = 3 });
        await _h.Store.UpdateAsync(new ObjectKey("pods", "default", pod.Name()), pod);
        await _h.SyncAsync();

        // The decision is recorded at once (FailureTarget); Failed follows once the stopped pod is gone from its node.
        Assert.Equal("BackoffLimitExceeded", Pods.Condition(await _h.GetAsync("jobs", "job"), "FailureTarget")?.Str("reason"));
        Assert.Null(Pods.Condition(await _h.GetAsync("jobs", "job"), "Failed"));
        Assert.Empty(await _h.ActivePodsAsync());
        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        Assert.Equal("BackoffLimitExceeded", Pods.Condition(await _h.GetAsync("jobs", "job"), "Failed")?.Str("reason"));
    }

    [Fact]
    public async Task Job_past_its_active_deadline_fails_and_stops_its_pods()
    {
        await _h.CreateAsync("jobs", Job("\"activeDeadlineSeconds\": 300,"));
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        Assert.Equal(_h.Time.GetUtcNow().AddSeconds(300), _h.Next);

        _h.Time.Advance(TimeSpan.FromSeconds(300));
        await _h.SyncAsync();
        var job = await _h.GetAsync("jobs", "job");
        Assert.Equal("DeadlineExceeded", Pods.Condition(job, "FailureTarget")?.Str("reason"));
        Assert.Null(Pods.Condition(job, "Failed"));
        Assert.Empty(await _h.ActivePodsAsync());
        Assert.Equal(1, ControllerLoop.Long(job["status"]!["terminating"]));

        // The stopped pod counts as failed; Failed comes once its node has finished with it.
        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        job = await _h.GetAsync("jobs", "job");
        var failed = Pods.Condition(job, "Failed");
        Assert.Equal("DeadlineExceeded", failed?.Str("reason"));
        Assert.Equal("Job was active longer than specified deadline", failed?.Str("message"));
        Assert.Equal(1, ControllerLoop.Long(job["status"]!["failed"]));
        Assert.Empty(await _h.ListAsync("pods"));
    }

    [Fact]
    public async Task Suspending_a_job_stops_its_pods_and_resuming_starts_them_again()
    {
        await _h.CreateAsync("jobs", Job("\"parallelism\": 2, \"completions\": 4,"));
        await _h.SyncAsync();
        Assert.Equal(2, (await _h.ActivePodsAsync()).Count);

        await _h.MarkAllReadyAsync();
        await _h.UpdateSpecAsync("jobs", "job", j => j["spec"]!["suspend"] = true);
        await _h.SyncAsync();
        Assert.Empty(await _h.ActivePodsAsync());
        var job = await _h.GetAsync("jobs", "job");
        var suspended = Pods.Condition(job, "Suspended");
        Assert.Equal("True", suspended?.Str("status"));
        Assert.Equal("JobSuspended", suspended?.Str("reason"));
        // Pods stopped by a suspension are released first: they are not failures.
        Assert.All(await _h.ListAsync("pods"), p => Assert.False(JobController.HasFinalizer(p)));
        Assert.Null(job["status"]!["failed"]);

        // Nothing changes while it stays suspended, however long (the condition is written once).
        var version = job.ResourceVersion();
        _h.Time.Advance(TimeSpan.FromMinutes(5));
        await _h.SyncAsync();
        Assert.Equal(version, (await _h.GetAsync("jobs", "job")).ResourceVersion());

        await _h.FinishDeletionsAsync();
        await _h.UpdateSpecAsync("jobs", "job", j => j["spec"]!["suspend"] = false);
        await _h.SyncAsync();
        Assert.Equal(2, (await _h.ActivePodsAsync()).Count);
        job = await _h.GetAsync("jobs", "job");
        Assert.Equal("JobResumed", Pods.Condition(job, "Suspended")?.Str("reason"));
        // A resumed job's active deadline counts from the resume.
        Assert.Equal(ObjectMeta.Time(_h.Time.GetUtcNow()), job["status"]!["startTime"]!.GetValue<string>());
    }
}
