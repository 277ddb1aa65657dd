using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Probes;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Tests.Fakes;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Pods;

/// <summary>Pod worker turns against the in-memory runtime, with fake time so backoffs take no time.</summary>
public sealed class PodWorkerTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
    private readonly FakeRuntime _runtime;
    private readonly string _stateDir = Directory.CreateTempSubdirectory("edgekube-worker-").FullName;
    private readonly StatusManager _statuses;
    private readonly ProbeManager _probes;
    private readonly PodWorkerContext _context;

    public PodWorkerTests()
    {
        _runtime = new FakeRuntime(_time);
        _runtime.AddImage("busybox:1.0");
        _statuses = new StatusManager(_stateDir, NullLogger<StatusManager>.Instance);
        _probes = new ProbeManager(_runtime, _time, NullLogger<ProbeManager>.Instance);
        var layout = new NodeLayout("node1", Path.Combine(_stateDir, "pods"), Path.Combine(_stateDir, "logs"), 1L << 30);
        var crash = Backoff.ForCrashLoop(_time);
        var image = Backoff.ForImagePull(_time);
        var syncer = new PodSyncer(_runtime, new RuntimeConfigBuilder(layout), crash, image, _time, NullLogger<PodSyncer>.Instance);
        _context = new PodWorkerContext(_runtime, new RuntimeInspector(_runtime), syncer, _probes, _statuses, crash, image, layout, () => "192.168.1.10", _time, NullLogger.Instance);
    }

    public void Dispose()
    {
        _probes.Dispose();
        Directory.Delete(_stateDir, recursive: true);
    }

    private V1ContainerStatus App(V1Pod pod) => _statuses.Get(pod.Uid())!.ContainerStatuses.Single();

    [Fact]
    public async Task A_pod_is_started_and_reported_running()
    {
        var pod = TestPods.Simple();
        var worker = new PodWorker(pod.Uid(), pod, _context);
        await worker.TurnAsync(CancellationToken.None);

        Assert.Equal(1, _runtime.Calls.Count(c => c == "RunPodSandbox"));
        Assert.Equal(ContainerState.ContainerRunning, _runtime.ContainersNamed("app").Single().State);
        var status = _statuses.Get(pod.Uid())!;
        Assert.Equal("Running", status.Phase);
        Assert.Equal(_runtime.AllSandboxes().Single().Network.Ip, status.PodIP);
        Assert.NotNull(App(pod).State.Running);
    }

    [Fact]
    public async Task A_periodic_look_vouched_for_by_the_relist_reads_nothing_and_a_change_is_still_acted_on()
    {
        var observer = new RuntimeObserver(_runtime, _time, NullLogger<RuntimeObserver>.Instance);
        var context = _context with { Inspector = new RuntimeInspector(_runtime, observer) };
        var pod = TestPods.Simple();
        var worker = new PodWorker(pod.Uid(), pod, context);
        await worker.TurnAsync(CancellationToken.None);

        // The relist reports the new pod and the turn it wakes reads the runtime; the next relist sees nothing new, so the
        // periodic look takes the answer kept from that read: no CRI call at all, the same status.
        await observer.RelistAsync(CancellationToken.None);
        await worker.TurnAsync(CancellationToken.None);
        await observer.RelistAsync(CancellationToken.None);
        var statusBefore = _statuses.Get(pod.Uid());
        var calls = _runtime.Calls.Count;
        var next = await worker.TurnAsync(CancellationToken.None, resync: true);
        Assert.Equal(calls, _runtime.Calls.Count);
        Assert.Equal(context.ResyncPeriod, next);
        Assert.Equal("Running", _statuses.Get(pod.Uid())!.Phase);
        Assert.Same(statusBefore, _statuses.Get(pod.Uid()));

        // The container exits; the relist reports the pod, and even a periodic look reads the runtime and restarts it.
        _runtime.Exit(_runtime.ContainersNamed("app").Single().Id, 2);
        await observer.RelistAsync(CancellationToken.None);
        await worker.TurnAsync(CancellationToken.None, resync: true);
        Assert.Equal(2, _runtime.ContainersNamed("app").Count);
        Assert.Equal(1, App(pod).RestartCount);
        Assert.Equal(2, App(pod).LastState.Terminated.ExitCode);
    }

    [Fact]
    public async Task A_crashing_container_backs_off_ten_seconds_then_twenty()
    {
        var pod = TestPods.Simple();
        var worker = new PodWorker(pod.Uid(), pod, _context);
        await worker.TurnAsync(CancellationToken.None);

        // First exit: restarted at once (kubelet starts the backoff with the first restart).
        _runtime.Exit(_runtime.ContainersNamed("app").Last().Id, 1);
        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal(2, _runtime.ContainersNamed("app").Count);
        Assert.Equal(1, App(pod).RestartCount);

        // Second exit: CrashLoopBackOff for 10 s.
        _runtime.Exit(_runtime.ContainersNamed("app").Last().Id, 1);
        var next = await worker.TurnAsync(CancellationToken.None);
        Assert.Equal(2, _runtime.ContainersNamed("app").Count);
        Assert.Equal("CrashLoopBackOff", App(pod).State.Waiting.Reason);
        Assert.StartsWith("back-off 10s restarting failed container=app", App(pod).State.Waiting.Message);
        Assert.Equal(1, App(pod).LastState.Terminated.ExitCode);
        Assert.True(next <= TimeSpan.FromSeconds(10));

        _time.Advance(TimeSpan.FromSeconds(10));
        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal(2, App(pod).RestartCount);
        Assert.NotNull(App(pod).State.Running);

        // Third exit: now 20 s.
        _runtime.Exit(_runtime.ContainersNamed("app").Last().Id, 1);
        await worker.TurnAsync(CancellationToken.None);
        Assert.StartsWith("back-off 20s", App(pod).State.Waiting.Message);
    }

    [Fact]
    public async Task A_failed_pull_is_err_image_pull_then_image_pull_back_off()
    {
        var pod = TestPods.Simple(image: "127.0.0.1:5000/missing:v1");
        _runtime.UnpullableImages.Add("127.0.0.1:5000/missing:v1");
        var worker = new PodWorker(pod.Uid(), pod, _context);

        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal("ErrImagePull", App(pod).State.Waiting.Reason);
        Assert.Equal(1, _runtime.Calls.Count(c => c == "PullImage"));

        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal("ImagePullBackOff", App(pod).State.Waiting.Reason);
        Assert.Equal("Back-off pulling image \"127.0.0.1:5000/missing:v1\"", App(pod).State.Waiting.Message);
        Assert.Equal(1, _runtime.Calls.Count(c => c == "PullImage"));
        Assert.Equal("Pending", _statuses.Get(pod.Uid())!.Phase);

        _time.Advance(TimeSpan.FromSeconds(10));
        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal(2, _runtime.Calls.Count(c => c == "PullImage"));
        Assert.Equal("ErrImagePull", App(pod).State.Waiting.Reason);

        _runtime.UnpullableImages.Clear();
        _time.Advance(TimeSpan.FromSeconds(20));
        await worker.TurnAsync(CancellationToken.None);
        Assert.NotNull(App(pod).State.Running);
    }

    [Fact]
    public async Task Never_pull_policy_with_a_missing_image_waits_with_err_image_never_pull()
    {
        var pod = TestPods.FromYaml("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              containers: [{name: app, image: "nothere:1", imagePullPolicy: Never}]
            """);
        await new PodWorker(pod.Uid(), pod, _context).TurnAsync(CancellationToken.None);
        Assert.Equal("ErrImageNeverPull", App(pod).State.Waiting.Reason);
        Assert.DoesNotContain("PullImage", _runtime.Calls);
    }

    [Fact]
    public async Task A_new_worker_for_the_same_pod_adopts_what_runs()
    {
        var pod = TestPods.Simple();
        await new PodWorker(pod.Uid(), pod, _context).TurnAsync(CancellationToken.None);
        var adopted = new PodWorker(pod.Uid(), pod, _context);
        await adopted.TurnAsync(CancellationToken.None);
        Assert.Equal(1, _runtime.Calls.Count(c => c == "RunPodSandbox"));
        Assert.Equal(1, _runtime.Calls.Count(c => c == "CreateContainer"));
    }

    [Fact]
    public async Task Terminating_removes_everything_and_the_status()
    {
        var pod = TestPods.Simple();
        var worker = new PodWorker(pod.Uid(), pod, _context);
        await worker.TurnAsync(CancellationToken.None);
        worker.Terminate();
        Assert.Equal(PodWorkerState.Terminating, worker.State);
        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal(PodWorkerState.Terminated, worker.State);
        Assert.Empty(_runtime.AllSandboxes());
        Assert.Empty(_runtime.ContainersNamed("app"));
        Assert.Null(_statuses.Get(pod.Uid()));
    }

    [Fact]
    public async Task An_unreachable_runtime_fails_the_turn_without_losing_state()
    {
        var pod = TestPods.Simple();
        var worker = new PodWorker(pod.Uid(), pod, _context);
        _runtime.InjectError("ListPodSandbox", new RuntimeException(RuntimeErrorKind.Unavailable, "connection refused"));
        await Assert.ThrowsAsync<RuntimeException>(() => worker.TurnAsync(CancellationToken.None));
        await worker.TurnAsync(CancellationToken.None);
        Assert.Equal("Running", _statuses.Get(pod.Uid())!.Phase);
    }
}
