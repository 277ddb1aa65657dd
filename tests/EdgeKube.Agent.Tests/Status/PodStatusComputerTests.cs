using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Status;

public class PodStatusComputerTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-01-01T00:00:00Z");

    private static ObservedContainer C(string name, ContainerState state, int exitCode = 0, int restart = 0, string reason = "") =>
        new("id-" + name + restart, "s1", name, restart, state, T0.AddSeconds(restart), T0.AddSeconds(restart + 1),
            state == ContainerState.ContainerExited ? T0.AddSeconds(restart + 2) : null, exitCode, reason, string.Empty, "x:1", "sha256:abc", "h");

    private static ObservedPod Observed(params ObservedContainer[] containers) =>
        new("u", "default", "web", [new ObservedSandbox("s1", 0, true, T0, "10.244.0.5", [], false)], containers);

    private static V1PodStatus Compute(V1Pod pod, ObservedPod observed, PodSyncNotes? notes = null) =>
        PodStatusComputer.Compute(pod, observed, notes ?? new PodSyncNotes { StartTime = T0 }, null, "192.168.1.10", T0.AddMinutes(1));

    private static string Condition(V1PodStatus s, string type) => s.Conditions.Single(c => c.Type == type).Status;

    [Fact]
    public void A_running_pod_is_running_and_ready()
    {
        var status = Compute(TestPods.Simple(), Observed(C("app", ContainerState.ContainerRunning)));
        Assert.Equal("Running", status.Phase);
        Assert.Equal("10.244.0.5", status.PodIP);
        Assert.Equal("192.168.1.10", status.HostIP);
        Assert.Equal("True", Condition(status, "Ready"));
        Assert.Equal("True", Condition(status, "ContainersReady"));
        Assert.Equal("True", Condition(status, "Initialized"));
        Assert.Equal("True", Condition(status, "PodScheduled"));
        var cs = status.ContainerStatuses.Single();
        Assert.True(cs.Ready);
        Assert.True(cs.Started);
        Assert.Equal("containerd://id-app0", cs.ContainerID);
        Assert.Equal("sha256:abc", cs.ImageID);
        Assert.NotNull(cs.State.Running.StartedAt);
        Assert.Equal("BestEffort", status.QosClass);
    }

    [Fact]
    public void A_container_not_created_yet_is_waiting_in_container_creating()
    {
        var status = Compute(TestPods.Simple(), Observed());
        Assert.Equal("Pending", status.Phase);
        Assert.Equal("ContainerCreating", status.ContainerStatuses.Single().State.Waiting.Reason);
        Assert.Equal("False", Condition(status, "Ready"));
        Assert.Equal("ContainersNotReady", status.Conditions.Single(c => c.Type == "Ready").Reason);
    }

    [Fact]
    public void Crash_loop_shows_waiting_with_the_last_termination()
    {
        var notes = new PodSyncNotes { StartTime = T0, Waiting = new Dictionary<string, ContainerWaiting> { ["app"] = new("CrashLoopBackOff", "back-off 20s restarting failed container=app") } };
        var status = Compute(TestPods.Simple(), Observed(C("app", ContainerState.ContainerExited, 1, restart: 2)), notes);
        var cs = status.ContainerStatuses.Single();
        Assert.Equal("CrashLoopBackOff", cs.State.Waiting.Reason);
        Assert.Equal(1, cs.LastState.Terminated.ExitCode);
        Assert.Equal("Error", cs.LastState.Terminated.Reason);
        Assert.Equal(2, cs.RestartCount);
        Assert.Equal("Running", status.Phase); // kubelet: restarting containers keep the pod Running
    }

    [Theory]
    [InlineData("Never", 0, "Succeeded", "Completed")]
    [InlineData("Never", 3, "Failed", "Error")]
    [InlineData("OnFailure", 0, "Succeeded", "Completed")]
    public void Finished_pods_get_their_final_phase(string policy, int exitCode, string phase, string reason)
    {
        var status = Compute(TestPods.Simple(policy), Observed(C("app", ContainerState.ContainerExited, exitCode)));
        Assert.Equal(phase, status.Phase);
        Assert.Equal(reason, status.ContainerStatuses.Single().State.Terminated.Reason);
        Assert.Equal(exitCode, status.ContainerStatuses.Single().State.Terminated.ExitCode);
        Assert.Equal("PodCompleted", status.Conditions.Single(c => c.Type == "Ready").Reason);
    }

    [Fact]
    public void Oom_killed_is_reported_as_such()
    {
        var status = Compute(TestPods.Simple("Never"), Observed(C("app", ContainerState.ContainerExited, 137, reason: "OOMKilled")));
        Assert.Equal("OOMKilled", status.ContainerStatuses.Single().State.Terminated.Reason);
    }

    [Fact]
    public void Readiness_probe_drives_ready()
    {
        var pod = TestPods.FromYaml("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              containers: [{name: app, image: x:1, readinessProbe: {exec: {command: ["true"]}}}]
            """);
        var observed = Observed(C("app", ContainerState.ContainerRunning));
        var notReady = Compute(pod, observed, new PodSyncNotes { StartTime = T0 });
        Assert.Equal("False", Condition(notReady, "Ready"));
        Assert.False(notReady.ContainerStatuses.Single().Ready);
        var ready = Compute(pod, observed, new PodSyncNotes { StartTime = T0, Ready = new Dictionary<string, bool> { ["app"] = true } });
        Assert.Equal("True", Condition(ready, "Ready"));
    }

    [Fact]
    public void Init_containers_keep_the_pod_pending_and_app_containers_waiting_in_pod_initializing()
    {
        var pod = TestPods.FromYaml("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              initContainers: [{name: init, image: x:1}]
              containers: [{name: app, image: x:1}]
            """);
        var status = Compute(pod, Observed(C("init", ContainerState.ContainerRunning)));
        Assert.Equal("Pending", status.Phase);
        Assert.Equal("False", Condition(status, "Initialized"));
        Assert.Equal("ContainersNotInitialized", status.Conditions.Single(c => c.Type == "Initialized").Reason);
        Assert.Equal("PodInitializing", status.ContainerStatuses.Single().State.Waiting.Reason);
        Assert.NotNull(status.InitContainerStatuses.Single().State.Running);
    }

    [Fact]
    public void Transition_times_are_kept_while_a_condition_holds()
    {
        var pod = TestPods.Simple();
        var observed = Observed(C("app", ContainerState.ContainerRunning));
        var first = Compute(pod, observed);
        var later = PodStatusComputer.Compute(pod, observed, new PodSyncNotes { StartTime = T0 }, first, "192.168.1.10", T0.AddHours(1));
        Assert.Equal(first.Conditions.Single(c => c.Type == "Ready").LastTransitionTime, later.Conditions.Single(c => c.Type == "Ready").LastTransitionTime);
        Assert.Equal(k8s.KubernetesJson.Serialize(first), k8s.KubernetesJson.Serialize(later));
    }

    [Fact]
    public void A_pod_failure_is_reported_as_failed_with_its_reason()
    {
        var status = Compute(TestPods.Simple(), Observed(), new PodSyncNotes { PodFailure = new ContainerWaiting("InvalidManifest", "spec.containers: Required value") });
        Assert.Equal("Failed", status.Phase);
        Assert.Equal("InvalidManifest", status.Reason);
    }

    [Fact]
    public void Pod_worker_transitions_are_the_table()
    {
        Assert.Equal(
            [(PodWorkerState.Syncing, PodWorkerState.Terminating), (PodWorkerState.Terminating, PodWorkerState.Terminated)],
            PodWorkerTransitions.Allowed.OrderBy(t => t.From).ToList());
        Assert.False(PodWorkerTransitions.IsAllowed(PodWorkerState.Terminated, PodWorkerState.Syncing));
        Assert.False(PodWorkerTransitions.IsAllowed(PodWorkerState.Terminating, PodWorkerState.Syncing));
        Assert.False(PodWorkerTransitions.IsAllowed(PodWorkerState.Syncing, PodWorkerState.Terminated));
    }
}
