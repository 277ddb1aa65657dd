using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers.Workloads;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

/// <summary>
/// The job controller's pod tracking with the batch.kubernetes.io/job-tracking finalizer, ttlSecondsAfterFinished
/// and Indexed completion, on the in-memory store with fake time.
/// </summary>
public sealed class JobTrackingTests : IAsyncLifetime
{
    private readonly WorkloadHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static string Job(string spec, string name = "job") => """
        {"metadata": {"name": "NAME"},
         "spec": {SPEC "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox:1"}]}}}}
        """.Replace("SPEC", spec, StringComparison.Ordinal).Replace("NAME", name, StringComparison.Ordinal);

    private Task<JsonObject> JobAsync(string name = "job") => _h.GetAsync("jobs", name);

    private static long Count(JsonObject job, string field) => ControllerLoop.Long(job["status"]?[field]);

    private static List<string> Uncounted(JsonObject job, string field) =>
        (job["status"]?["uncountedTerminatedPods"]?[field] as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToList();

    private Task<JsonObject> PodAsync(JsonObject pod) => _h.GetAsync("pods", pod.Name());

    private async Task<bool> ExistsAsync(JsonObject pod) => await _h.Store.GetAsync(new ObjectKey("pods", pod.Namespace(), pod.Name())) is not null;

    /// <summary>Deletes as kubectl delete --grace-period=0 --force, or the garbage collector, does: the finalizer alone decides whether the pod stays.</summary>
    private async Task ForceDeleteAsync(JsonObject pod) =>
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("pods"), await PodAsync(pod), 0, null, default);

    [Fact]
    public async Task Job_pods_carry_the_tracking_finalizer_until_their_result_is_counted()
    {
        await _h.CreateAsync("jobs", Job("\"completions\": 2, \"parallelism\": 2,"));
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();
        Assert.Equal(2, pods.Count);
        Assert.All(pods, p => Assert.Equal([JobController.TrackingFinalizer], ObjectWriter.Finalizers(p)));

        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        Assert.All(await _h.ActivePodsAsync(), p => Assert.True(JobController.HasFinalizer(p)));

        await _h.SucceedAsync(pods[0]);
        await _h.SyncAsync();
        var job = await JobAsync();
        Assert.Equal(1, Count(job, "succeeded"));
        Assert.Empty(Uncounted(job, "succeeded"));
        Assert.Equal("{}", job["status"]!["uncountedTerminatedPods"]!.ToJsonString());
        Assert.False(JobController.HasFinalizer(await PodAsync(pods[0])));
        Assert.True(JobController.HasFinalizer(await PodAsync(pods[1])));

        await _h.SucceedAsync(pods[1]);
        await _h.SyncAsync();
        job = await JobAsync();
        Assert.Equal(2, Count(job, "succeeded"));
        Assert.Equal("CompletionsReached", Pods.Condition(job, "SuccessCriteriaMet")?.Str("reason"));
        Assert.Equal("True", Pods.Condition(job, "Complete")?.Str("status"));
        Assert.Equal("Reached expected number of succeeded pods", Pods.Condition(job, "Complete")?.Str("message"));
        // Finished pods stay (for kubectl logs job/...), released.
        Assert.All(await _h.ListAsync("pods"), p => Assert.Empty(ObjectWriter.Finalizers(p)));
    }

    [Fact]
    public async Task The_uids_are_recorded_as_uncounted_before_the_finalizers_go_and_counted_after()
    {
        await _h.CreateAsync("jobs", Job("\"completions\": 3,"));
        await _h.SyncAsync();
        var pod = Assert.Single(await _h.ActivePodsAsync());
        await _h.SucceedAsync(pod);

        // Every status the job controller writes, in order.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<JsonObject>();
        var watch = _h.Store.WatchAsync("jobs.batch", "default", _h.Store.CurrentResourceVersion, stop.Token);
        await _h.Jobs.SyncAllAsync(default);
        await foreach (var e in watch)
        {
            seen.Add(e.Object);
            if (Count(e.Object, "succeeded") == 1)
            {
                break;
            }
        }

        Assert.Equal([pod.Uid()], Uncounted(seen[0], "succeeded"));
        Assert.Equal(0, Count(seen[0], "succeeded"));
        Assert.Empty(Uncounted(seen[^1], "succeeded"));
        Assert.Equal(1, Count(seen[^1], "succeeded"));
        Assert.False(JobController.HasFinalizer(await PodAsync(pod)));
    }

    [Fact]
    public async Task A_pod_deleted_before_the_controller_saw_its_end_is_kept_until_counted()
    {
        await _h.CreateAsync("jobs", Job("\"completions\": 2, \"parallelism\": 2, \"backoffLimit\": 3,"));
        await _h.SyncAsync();
        var pods = await _h.ActivePodsAsync();

        // One succeeds and one fails, and both are deleted at once, before the job controller runs.
        await _h.SucceedAsync(pods[0]);
        await _h.FailAsync(pods[1]);
        await ForceDeleteAsync(pods[0]);
        await ForceDeleteAsync(pods[1]);
        var held = await PodAsync(pods[0]);
        Assert.NotNull(held.Metadata()["deletionTimestamp"]);
        Assert.Equal("Succeeded", Pods.Phase(held));

        await _h.Jobs.SyncAllAsync(default);
        var job = await JobAsync();
        Assert.Equal(1, Count(job, "succeeded"));
        Assert.Equal(1, Count(job, "failed"));
        Assert.False(await ExistsAsync(pods[0]));
        Assert.False(await ExistsAsync(pods[1]));
    }

    [Fact]
    public async Task A_running_pod_deleted_counts_as_failed_and_is_replaced_after_the_back_off()
    {
        await _h.CreateAsync("jobs", Job("\"backoffLimit\": 2,"));
        await _h.SyncAsync();
        var pod = Assert.Single(await _h.ActivePodsAsync());
        await _h.MarkReadyAsync(pod);

        // kubectl delete pod: graceful, the node still stops it.
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("pods"), await PodAsync(pod), null, null, default);
        await _h.SyncAsync();
        var job = await JobAsync();
        Assert.Equal(1, Count(job, "failed"));
        Assert.Equal(1, Count(job, "terminating"));
        Assert.False(JobController.HasFinalizer(await PodAsync(pod)));
        Assert.Empty(await _h.ActivePodsAsync());
        Assert.Equal(_h.Time.GetUtcNow() + JobController.Backoff(1), _h.Next);

        // Its node stops it; no finalizer holds it, so it goes.
        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        Assert.False(await ExistsAsync(pod));
        Assert.Equal(0, Count(await JobAsync(), "terminating"));

        // The back-off is remembered although the failed pod is gone.
        _h.Time.Advance(TimeSpan.FromSeconds(9));
        await _h.SyncAsync();
        Assert.Empty(await _h.ActivePodsAsync());
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.SyncAsync();
        Assert.Single(await _h.ActivePodsAsync());
        Assert.Equal(1, Count(await JobAsync(), "failed"));
    }

    [Fact]
    public async Task A_pod_whose_node_went_away_counts_as_failed()
    {
        await _h.CreateAsync("jobs", Job("\"backoffLimit\": 0,"));
        await _h.SyncAsync();
        var pod = Assert.Single(await _h.ActivePodsAsync());
        await _h.MarkReadyAsync(pod);

        // What the node lifecycle controller does with the pods of a node that was removed.
        var current = await PodAsync(pod);
        await ObjectWriter.FinishPodAsync(_h.Store, _h.Time, new ObjectKey("pods", "default", pod.Name()), current, default);
        var marked = await PodAsync(pod);
        Assert.Equal("Failed", Pods.Phase(marked));
        Assert.Equal(0, ControllerLoop.Long(marked.Metadata()["deletionGracePeriodSeconds"], -1));

        await _h.SyncAsync();
        var job = await JobAsync();
        Assert.Equal(1, Count(job, "failed"));
        Assert.Equal("BackoffLimitExceeded", Pods.Condition(job, "Failed")?.Str("reason"));
        Assert.False(await ExistsAsync(pod));
    }

    [Fact]
    public async Task Deleting_a_job_releases_its_pods_in_the_background_and_in_the_foreground()
    {
        await _h.CreateAsync("jobs", Job("\"parallelism\": 2, \"completions\": 4,", "background"));
        await _h.CreateAsync("jobs", Job("\"parallelism\": 2, \"completions\": 4,", "foreground"));
        await _h.SyncAsync();
        await _h.MarkAllReadyAsync();
        await _h.SyncAsync();
        Assert.Equal(4, (await _h.ListAsync("pods")).Count(JobController.HasFinalizer));

        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("jobs"), await JobAsync("background"), null, null, default);
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("jobs"), await JobAsync("foreground"), null, "Foreground", default);
        await _h.SyncAsync();

        // The collector deletes the pods; the job controller lets them go, the orphans and the foreground job's alike.
        var pods = await _h.ListAsync("pods");
        Assert.Equal(4, pods.Count);
        Assert.All(pods, p => Assert.True(Pods.IsTerminating(p)));
        Assert.All(pods, p => Assert.False(JobController.HasFinalizer(p)));
        Assert.NotNull(await _h.Store.GetAsync(new ObjectKey("jobs.batch", "default", "foreground")));

        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        Assert.Empty(await _h.ListAsync("pods"));
        Assert.Empty(await _h.ListAsync("jobs"));
    }

    [Fact]
    public async Task A_pod_held_by_another_finalizer_stays_after_its_node_is_done_until_that_goes()
    {
        var pod = await _h.CreateAsync("pods", """
            {"metadata": {"name": "held", "finalizers": ["example.com/keep"]},
             "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "busybox:1"}]}}
            """);
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("pods"), pod, null, null, default);
        var marked = await PodAsync(pod);
        Assert.Equal(30, ControllerLoop.Long(marked.Metadata()["deletionGracePeriodSeconds"]));
        Assert.False(ObjectWriter.IsStopped(marked));

        await _h.MarkReadyAsync(marked);
        await _h.FinishDeletionsAsync();
        var stopped = await PodAsync(pod);
        Assert.True(ObjectWriter.IsStopped(stopped));
        Assert.Equal("Failed", Pods.Phase(stopped));
        Assert.False(Pods.IsReady(stopped));

        // Marking it again changes nothing (the node lifecycle controller passes by every second).
        await ObjectWriter.FinishPodAsync(_h.Store, _h.Time, new ObjectKey("pods", "default", "held"), stopped, default);
        Assert.Equal(stopped.ResourceVersion(), (await PodAsync(pod)).ResourceVersion());

        // An update that removes the last finalizer removes the pod, as the API server does.
        stopped.Metadata().Remove("finalizers");
        var key = new ObjectKey("pods", "default", "held");
        await _h.Writer.RemoveIfReleasedAsync(key, await _h.Store.UpdateAsync(key, stopped, stopped.ResourceVersion()), default);
        Assert.False(await ExistsAsync(pod));
    }

    [Fact]
    public async Task A_released_pod_still_running_stays_until_its_node_has_stopped_it()
    {
        var pod = await _h.CreateAsync("pods", """
            {"metadata": {"name": "running", "finalizers": ["example.com/keep"]},
             "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "busybox:1"}]}}
            """);
        await _h.Writer.DeleteAsync(WorkloadHarness.Resource("pods"), pod, null, null, default);
        var marked = await PodAsync(pod);
        marked.Metadata().Remove("finalizers");
        var key = new ObjectKey("pods", "default", "running");
        await _h.Writer.RemoveIfReleasedAsync(key, await _h.Store.UpdateAsync(key, marked, marked.ResourceVersion()), default);
        Assert.True(await ExistsAsync(pod));

        await _h.FinishDeletionsAsync();
        Assert.False(await ExistsAsync(pod));
    }

    [Fact]
    public async Task A_finished_job_is_deleted_ttl_seconds_after_it_finished_on_fake_time()
    {
        await _h.CreateAsync("jobs", Job("\"ttlSecondsAfterFinished\": 100,"));
        await _h.SyncAsync();
        await _h.SucceedAsync(Assert.Single(await _h.ActivePodsAsync()));
        await _h.SyncAsync();
        Assert.Equal("True", Pods.Condition(await JobAsync(), "Complete")?.Str("status"));
        Assert.Equal(_h.Time.GetUtcNow().AddSeconds(100), _h.Next);

        _h.Time.Advance(TimeSpan.FromSeconds(99));
        await _h.SyncAsync();
        Assert.Null((await JobAsync()).Metadata()["deletionTimestamp"]);

        // Deleted in the foreground: its pod goes first (once its node has removed it), then the job.
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.SyncAsync();
        Assert.NotNull((await JobAsync()).Metadata()["deletionTimestamp"]);
        await _h.FinishDeletionsAsync();
        await _h.SyncAsync();
        Assert.Empty(await _h.ListAsync("jobs"));
        Assert.Empty(await _h.ListAsync("pods"));
    }

    [Fact]
    public async Task Indexed_job_runs_each_index_until_it_succeeds()
    {
        await _h.CreateAsync("jobs", Job("\"completions\": 3, \"parallelism\": 2, \"completionMode\": \"Indexed\", \"backoffLimit\": 2,", "idx"));
        await _h.SyncAsync();
        var pods = (await _h.ActivePodsAsync()).OrderBy(JobController.CompletionIndex).ToList();
        Assert.Equal([0, 1], pods.Select(JobController.CompletionIndex));
        var first = pods[0];
        Assert.StartsWith("idx-0-", first.Name());
        Assert.Equal("idx-0", first["spec"]!["hostname"]!.GetValue<string>());
        Assert.Equal("0", first.Labels()[JobController.CompletionIndexAnnotation]);
        var env = first["spec"]!["containers"]![0]!["env"]![0]!;
        Assert.Equal(JobController.CompletionIndexEnv, env["name"]!.GetValue<string>());
        Assert.Equal("metadata.annotations['batch.kubernetes.io/job-completion-index']", env["valueFrom"]!["fieldRef"]!["fieldPath"]!.GetValue<string>());

        // Index 1 succeeds: index 2 starts.
        await _h.SucceedAsync(pods[1]);
        await _h.SyncAsync();
        var job = await JobAsync("idx");
        Assert.Equal("1", job["status"]!["completedIndexes"]!.GetValue<string>());
        Assert.Equal(1, Count(job, "succeeded"));
        Assert.Equal([0, 2], (await _h.ActivePodsAsync()).Select(JobController.CompletionIndex).Order());

        // Index 0 fails: it runs again after the back-off.
        await _h.FailAsync(pods[0]);
        await _h.SyncAsync();
        Assert.Equal(1, Count(await JobAsync("idx"), "failed"));
        Assert.Equal([2], (await _h.ActivePodsAsync()).Select(JobController.CompletionIndex));

        _h.Time.Advance(JobController.Backoff(1));
        await _h.SyncAsync();
        pods = (await _h.ActivePodsAsync()).OrderBy(JobController.CompletionIndex).ToList();
        Assert.Equal([0, 2], pods.Select(JobController.CompletionIndex));

        foreach (var pod in pods)
        {
            await _h.SucceedAsync(pod);
        }

        await _h.SyncAsync();
        job = await JobAsync("idx");
        Assert.Equal("0-2", job["status"]!["completedIndexes"]!.GetValue<string>());
        Assert.Equal(3, Count(job, "succeeded"));
        Assert.Equal("True", Pods.Condition(job, "Complete")?.Str("status"));
    }

    [Fact]
    public async Task Indexed_job_replaces_a_second_pod_of_one_index()
    {
        await _h.CreateAsync("jobs", Job("\"completions\": 2, \"parallelism\": 2, \"completionMode\": \"Indexed\",", "idx"));
        await _h.SyncAsync();
        var zero = (await _h.ActivePodsAsync()).Single(p => JobController.CompletionIndex(p) == 0);

        // A stray copy of index 0 (as a restored backup might bring back).
        var copy = zero.DeepClone().AsObject();
        copy.Metadata()["name"] = "idx-0-copy";
        copy.Metadata()["uid"] = Guid.NewGuid().ToString();
        copy.Metadata().Remove("resourceVersion");
        await _h.Store.CreateAsync(new ObjectKey("pods", "default", "idx-0-copy"), copy);
        await _h.SyncAsync();
        var active = await _h.ActivePodsAsync();
        Assert.Equal([0, 1], active.Select(JobController.CompletionIndex).Order());
    }

    [Theory]
    [InlineData(new[] { 0, 1, 2, 4, 6, 7 }, "0-2,4,6,7")]
    [InlineData(new[] { 3 }, "3")]
    [InlineData(new int[0], "")]
    [InlineData(new[] { 5, 1, 2, 3, 9 }, "1-3,5,9")]
    public void Completed_indexes_are_written_and_read_as_kubernetes_does(int[] indexes, string text)
    {
        Assert.Equal(text, JobController.FormatIndexes(indexes));
        Assert.Equal(indexes.Order(), JobController.ParseIndexes(text, 100));
        // Indexes beyond completions and unreadable parts are left out.
        Assert.Equal([1, 2], JobController.ParseIndexes("1-2,x,7", 5));
    }
}
