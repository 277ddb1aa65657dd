using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Tests.Fakes;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Runtime;

/// <summary>The pod cache (kubelet's, for periodic syncs): when the kept answer may stand in for a read of the runtime.</summary>
public sealed class RuntimeInspectorTests
{
    private static readonly string[] ReadCalls = ["ListPodSandbox", "ListContainers", "PodSandboxStatus", "ContainerStatus"];
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
    private readonly FakeRuntime _runtime;
    private readonly RuntimeConfigBuilder _configs = new(new NodeLayout("node1", "/tmp/pods", "/tmp/logs", 1L << 30));
    private readonly RuntimeObserver _observer;
    private readonly RuntimeInspector _inspector;

    public RuntimeInspectorTests()
    {
        _runtime = new FakeRuntime(_time);
        _observer = new RuntimeObserver(_runtime, _time, NullLogger<RuntimeObserver>.Instance);
        _inspector = new RuntimeInspector(_runtime, _observer);
    }

    private async Task<string> RunAsync(V1Pod pod) => (await _runtime.RunPodAsync(pod, _configs)).Container;

    private int Reads() => _runtime.Calls.Count(ReadCalls.Contains);

    /// <summary>A cached look: the answer and how many runtime reads it took.</summary>
    private async Task<(ObservedPod Pod, int Reads)> LookAsync(string uid)
    {
        var before = Reads();
        var pod = await _inspector.InspectAsync(uid, allowCached: true, CancellationToken.None);
        return (pod, Reads() - before);
    }

    [Fact]
    public async Task The_kept_answer_stands_only_after_a_relist_that_started_after_it_and_until_the_pod_changes()
    {
        var a = TestPods.Simple(uid: "uid-a");
        var b = TestPods.Simple(uid: "uid-b");
        var containerA = await RunAsync(a);
        await RunAsync(b);
        await _observer.RelistAsync(CancellationToken.None);

        // A fresh read; no relist since it, so the next look reads again.
        var first = await _inspector.InspectAsync("uid-a", CancellationToken.None);
        Assert.True(Reads() > 0);
        Assert.True((await LookAsync("uid-a")).Reads > 0);

        // After a relist that found nothing new: the kept answer, no runtime call, the same containers.
        await _observer.RelistAsync(CancellationToken.None);
        var kept = await LookAsync("uid-a");
        Assert.Equal(0, kept.Reads);
        Assert.Same(first.Containers.Single().Id, kept.Pod.Containers.Single().Id);
        Assert.Equal(ContainerState.ContainerRunning, kept.Pod.Containers.Single().State);
        Assert.Equal(1, _inspector.KeptAnswers);

        // Without allowCached the runtime is read whatever is kept.
        var before = Reads();
        await _inspector.InspectAsync("uid-a", CancellationToken.None);
        Assert.True(Reads() > before);

        // The container exits. Until a relist sees it the cache cannot know; the relist that does reports the pod, and
        // the next look reads the exit from the runtime.
        await _observer.RelistAsync(CancellationToken.None);
        Assert.Equal(0, (await LookAsync("uid-a")).Reads);
        _runtime.Exit(containerA, 3);
        await _observer.RelistAsync(CancellationToken.None);
        var after = await LookAsync("uid-a");
        Assert.True(after.Reads > 0);
        Assert.Equal(ContainerState.ContainerExited, after.Pod.Containers.Single().State);
        Assert.Equal(3, after.Pod.Containers.Single().ExitCode);

        // The other pod is untouched by a's change: kept once a relist has vouched for its read.
        await _inspector.InspectAsync("uid-b", CancellationToken.None);
        await _observer.RelistAsync(CancellationToken.None);
        Assert.Equal(0, (await LookAsync("uid-b")).Reads);
    }

    [Fact]
    public async Task A_change_reported_while_a_read_runs_keeps_its_answer_out_of_the_cache()
    {
        var a = TestPods.Simple(uid: "uid-a");
        var containerA = await RunAsync(a);
        await _observer.RelistAsync(CancellationToken.None);

        // The read sees the container running. Meanwhile it exits and a relist reports it, before the read has
        // returned: that answer is already old and must not be kept, even after later relists that see no change.
        var read = new TaskCompletionSource();
        var proceed = new TaskCompletionSource();
        _runtime.AfterContainerStatus = () =>
        {
            read.TrySetResult();
            return proceed.Task;
        };
        var reading = _inspector.InspectAsync("uid-a", CancellationToken.None);
        await read.Task;
        _runtime.Exit(containerA, 1);
        await _observer.RelistAsync(CancellationToken.None);
        proceed.SetResult();
        var seen = await reading;
        _runtime.AfterContainerStatus = null;
        Assert.Equal(ContainerState.ContainerRunning, seen.Containers.Single().State);

        await _observer.RelistAsync(CancellationToken.None);
        await _observer.RelistAsync(CancellationToken.None);
        var look = await LookAsync("uid-a");
        Assert.True(look.Reads > 0);
        Assert.Equal(ContainerState.ContainerExited, look.Pod.Containers.Single().State);
        Assert.Equal(0, _inspector.KeptAnswers);
    }

    [Fact]
    public async Task A_relist_that_fails_vouches_for_nothing_and_a_pod_gone_from_the_runtime_is_read_again()
    {
        var a = TestPods.Simple(uid: "uid-a");
        await RunAsync(a);
        await _observer.RelistAsync(CancellationToken.None);
        await _inspector.InspectAsync("uid-a", CancellationToken.None);

        _runtime.InjectError("ListPodStates", new RuntimeException(RuntimeErrorKind.Unavailable, "containerd is restarting"));
        await _observer.RelistAsync(CancellationToken.None);
        Assert.NotNull(_observer.LastError);
        Assert.True((await LookAsync("uid-a")).Reads > 0);

        // The pod's sandbox goes (stopped and removed by hand): the relist reports it, the look reads an empty pod.
        var sandbox = _runtime.AllSandboxes().Single().Id;
        await _observer.RelistAsync(CancellationToken.None);
        await _runtime.StopPodSandboxAsync(sandbox, CancellationToken.None);
        await _runtime.RemovePodSandboxAsync(sandbox, CancellationToken.None);
        await _observer.RelistAsync(CancellationToken.None);
        var gone = await LookAsync("uid-a");
        Assert.True(gone.Reads > 0);
        Assert.Empty(gone.Pod.Sandboxes);
    }

    [Fact]
    public async Task Without_an_observer_every_look_reads_the_runtime()
    {
        await RunAsync(TestPods.Simple(uid: "uid-a"));
        var inspector = new RuntimeInspector(_runtime);
        await inspector.InspectAsync("uid-a", CancellationToken.None);
        await _observer.RelistAsync(CancellationToken.None);
        var before = Reads();
        await inspector.InspectAsync("uid-a", allowCached: true, CancellationToken.None);
        Assert.True(Reads() > before);
        Assert.Equal(0, inspector.KeptAnswers);
    }
}
