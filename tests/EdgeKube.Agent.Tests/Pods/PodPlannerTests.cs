using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Pods;

public class PodPlannerTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-01-01T00:00:00Z");

    private static readonly V1Pod TwoContainers = TestPods.FromYaml("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p, uid: u1}
        spec:
          containers:
          - {name: a, image: x:1}
          - {name: b, image: x:1}
        """);

    private static readonly V1Pod WithInit = TestPods.FromYaml("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p, uid: u2}
        spec:
          restartPolicy: Never
          initContainers:
          - {name: i1, image: x:1}
          - {name: i2, image: x:1}
          containers:
          - {name: a, image: x:1}
        """);

    private static ObservedSandbox Sandbox(string id = "s1", bool ready = true, uint attempt = 0) =>
        new(id, attempt, ready, T0, "10.0.0.2", [], false);

    private static ObservedContainer Container(V1Pod pod, string name, ContainerState state, int exitCode = 0, int restart = 0, string sandbox = "s1", string? hash = null) =>
        new("id-" + name + "-" + restart, sandbox, name, restart, state, T0.AddSeconds(restart), T0.AddSeconds(restart),
            state == ContainerState.ContainerExited ? T0.AddSeconds(restart + 1) : null, exitCode, string.Empty, string.Empty, "x:1", "sha256:x",
            hash ?? PodHashes.Of(PodValidation.AllContainers(pod.Spec).First(c => c.Name == name)));

    private static ObservedPod Observed(params object[] parts) =>
        new("u", "default", "p", parts.OfType<ObservedSandbox>().ToList(), parts.OfType<ObservedContainer>().ToList());

    [Fact]
    public void A_new_pod_gets_a_sandbox_and_all_its_containers()
    {
        var plan = PodPlanner.PlanSync(TwoContainers, Observed());
        Assert.Equal(new PodPlan { CreateSandboxAttempt = 0, ContainersToStart = ["a", "b"] }, plan with { ContainersToStart = plan.ContainersToStart, ContainersToKill = [], ContainersToRemove = [], SandboxesToRemove = [] }, PlanComparer.Instance);
        Assert.Equal(["a", "b"], plan.ContainersToStart);
        Assert.False(plan.KillPod);
    }

    [Fact]
    public void Containers_created_but_never_started_are_started_not_recreated()
    {
        // An agent killed between CreateContainer and StartContainer leaves containers in Created.
        var observed = Observed(Sandbox(), Container(TwoContainers, "a", ContainerState.ContainerCreated), Container(TwoContainers, "b", ContainerState.ContainerRunning));
        var plan = PodPlanner.PlanSync(TwoContainers, observed);
        Assert.Equal(["id-a-0"], plan.ContainersToResume);
        Assert.Empty(plan.ContainersToStart);
        Assert.False(plan.KillPod);

        var init = PodPlanner.PlanSync(WithInit, Observed(Sandbox(), Container(WithInit, "i1", ContainerState.ContainerCreated)));
        Assert.Equal(["id-i1-0"], init.ContainersToResume);
        Assert.Empty(init.ContainersToStart);
    }

    [Fact]
    public void A_running_pod_needs_nothing()
    {
        var observed = Observed(Sandbox(), Container(TwoContainers, "a", ContainerState.ContainerRunning), Container(TwoContainers, "b", ContainerState.ContainerRunning));
        Assert.True(PodPlanner.PlanSync(TwoContainers, observed).IsEmpty);
    }

    [Fact]
    public void A_dead_sandbox_is_replaced_with_the_next_attempt_after_killing_the_pod()
    {
        var observed = Observed(Sandbox(ready: false, attempt: 2), Container(TwoContainers, "a", ContainerState.ContainerRunning));
        var plan = PodPlanner.PlanSync(TwoContainers, observed);
        Assert.Equal(3u, plan.CreateSandboxAttempt);
        Assert.True(plan.KillPod);
        Assert.Equal(["a", "b"], plan.ContainersToStart);
    }

    [Fact]
    public void Two_ready_sandboxes_are_collapsed_into_a_new_one()
    {
        var observed = Observed(Sandbox("s1"), Sandbox("s2", attempt: 1));
        var plan = PodPlanner.PlanSync(TwoContainers, observed);
        Assert.Equal(2u, plan.CreateSandboxAttempt);
        Assert.True(plan.KillPod);
    }

    [Theory]
    [InlineData("Always", 0, true)]
    [InlineData("Always", 1, true)]
    [InlineData("OnFailure", 0, false)]
    [InlineData("OnFailure", 2, true)]
    [InlineData("Never", 1, false)]
    public void An_exited_container_restarts_as_the_restart_policy_says(string policy, int exitCode, bool restarts)
    {
        var pod = TestPods.Simple(policy);
        var observed = Observed(Sandbox(), Container(pod, "app", ContainerState.ContainerExited, exitCode));
        var plan = PodPlanner.PlanSync(pod, observed);
        Assert.Equal(restarts ? ["app"] : [], plan.ContainersToStart);
        Assert.Equal(!restarts, plan.KillPod); // nothing left to run: the sandbox stops
        Assert.Null(plan.CreateSandboxAttempt);
    }

    [Fact]
    public void Init_containers_run_one_at_a_time_in_order()
    {
        Assert.Equal(["i1"], PodPlanner.PlanSync(WithInit, Observed()).ContainersToStart);

        var running = Observed(Sandbox(), Container(WithInit, "i1", ContainerState.ContainerRunning));
        Assert.True(PodPlanner.PlanSync(WithInit, running).IsEmpty);

        var firstDone = Observed(Sandbox(), Container(WithInit, "i1", ContainerState.ContainerExited));
        Assert.Equal(["i2"], PodPlanner.PlanSync(WithInit, firstDone).ContainersToStart);

        var allDone = Observed(Sandbox(), Container(WithInit, "i1", ContainerState.ContainerExited), Container(WithInit, "i2", ContainerState.ContainerExited));
        Assert.Equal(["a"], PodPlanner.PlanSync(WithInit, allDone).ContainersToStart);
    }

    [Fact]
    public void A_failed_init_container_fails_the_pod_under_restart_policy_never()
    {
        var observed = Observed(Sandbox(), Container(WithInit, "i1", ContainerState.ContainerExited, exitCode: 1));
        var plan = PodPlanner.PlanSync(WithInit, observed);
        Assert.True(plan.KillPod);
        Assert.Empty(plan.ContainersToStart);
    }

    [Fact]
    public void A_failed_init_container_is_retried_under_restart_policy_always()
    {
        var pod = TestPods.FromYaml("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              initContainers: [{name: i1, image: x:1}]
              containers: [{name: a, image: x:1}]
            """);
        var observed = Observed(Sandbox(), Container(pod, "i1", ContainerState.ContainerExited, exitCode: 1));
        Assert.Equal(["i1"], PodPlanner.PlanSync(pod, observed).ContainersToStart);
    }

    [Fact]
    public void A_changed_container_definition_restarts_that_container()
    {
        var observed = Observed(Sandbox(), Container(TwoContainers, "a", ContainerState.ContainerRunning, hash: "old"), Container(TwoContainers, "b", ContainerState.ContainerRunning));
        var plan = PodPlanner.PlanSync(TwoContainers, observed);
        Assert.Equal(["id-a-0"], plan.ContainersToKill.Select(k => k.ContainerId));
        Assert.Equal(["a"], plan.ContainersToStart);
    }

    [Fact]
    public void A_failed_liveness_probe_restarts_the_container()
    {
        var observed = Observed(Sandbox(), Container(TwoContainers, "a", ContainerState.ContainerRunning), Container(TwoContainers, "b", ContainerState.ContainerRunning));
        var plan = PodPlanner.PlanSync(TwoContainers, observed, new Dictionary<string, string> { ["b"] = "Container b failed liveness probe, will be restarted" });
        Assert.Equal("Container b failed liveness probe, will be restarted", plan.ContainersToKill.Single().Reason);
        Assert.Equal(["b"], plan.ContainersToStart);
    }

    [Fact]
    public void A_sandbox_that_died_after_a_never_pod_ran_is_not_recreated()
    {
        var pod = TestPods.Simple("Never");
        var observed = Observed(Sandbox(ready: false), Container(pod, "app", ContainerState.ContainerExited, exitCode: 0));
        var plan = PodPlanner.PlanSync(pod, observed);
        Assert.Null(plan.CreateSandboxAttempt);
        Assert.Empty(plan.ContainersToStart);
    }

    [Fact]
    public void Old_exited_instances_are_garbage_collected_keeping_the_two_newest()
    {
        var pod = TestPods.Simple();
        var observed = Observed(Sandbox(),
            Container(pod, "app", ContainerState.ContainerExited, 1, restart: 0),
            Container(pod, "app", ContainerState.ContainerExited, 1, restart: 1),
            Container(pod, "app", ContainerState.ContainerExited, 1, restart: 2),
            Container(pod, "app", ContainerState.ContainerRunning, restart: 3));
        var plan = PodPlanner.PlanSync(pod, observed);
        Assert.Equal(["id-app-1", "id-app-0"], plan.ContainersToRemove);
        Assert.Empty(plan.ContainersToStart);
    }

    [Fact]
    public void Terminating_stops_everything_and_removes_what_has_stopped()
    {
        var pod = TestPods.Simple();
        var observed = Observed(Sandbox(), Container(pod, "app", ContainerState.ContainerRunning), Sandbox("old", ready: false));
        var plan = PodPlanner.PlanTerminate(observed);
        Assert.True(plan.KillPod);
        Assert.Equal(["old"], plan.SandboxesToRemove);
    }

    /// <summary>Compares the plan fields that matter for the first test.</summary>
    private sealed class PlanComparer : IEqualityComparer<PodPlan>
    {
        public static readonly PlanComparer Instance = new();

        public bool Equals(PodPlan? x, PodPlan? y) =>
            x!.KillPod == y!.KillPod && x.CreateSandboxAttempt == y.CreateSandboxAttempt && x.ContainersToStart.SequenceEqual(y.ContainersToStart);

        public int GetHashCode(PodPlan obj) => 0;
    }
}
