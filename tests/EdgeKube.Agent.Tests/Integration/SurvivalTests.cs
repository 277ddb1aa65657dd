using System.Net;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Tests.Fixtures;
using k8s;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>Agent restarts, kill -9, containerd restarts, bad input: pods survive and nothing is duplicated.</summary>
[Collection("containerd")]
public sealed class SurvivalTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    private string Sleeper(string name) => $$"""
        apiVersion: v1
        kind: Pod
        metadata: {name: {{name}} }
        spec:
          containers: [{name: app, image: {{Image}}, command: [sleep, "3600"]}]
        """;

    [Fact]
    public async Task A_killed_agent_adopts_its_pods_on_restart_without_duplicates()
    {
        Agent.WriteManifest("keep.yaml", Sleeper("keep"));
        var before = await Agent.WaitForPodAsync("keep", IsRunning, what: "Running");
        var containerId = ContainerId(before, "app");

        await Agent.KillAsync();
        // While the agent is away its pod keeps running.
        Assert.Equal(Cri.V1.ContainerState.ContainerRunning, (await Containerd.Runtime.ContainerStatusAsync(containerId, CancellationToken.None))!.State);

        var again = NewAgent(Agent.WorkDir);
        await again.StartAsync();
        var after = await again.WaitForPodAsync("keep", p => IsRunning(p) && p.Status.ContainerStatuses[0].ContainerID == "containerd://" + containerId, what: "adopted");
        Assert.Equal(before.Status.StartTime, after.Status.StartTime);
        Assert.Single(await SandboxesOf(after));
        Assert.Single(await ContainersOf(after));
        Assert.Equal(0, Status(after, "app").RestartCount);
    }

    [Fact]
    public async Task Killed_in_the_middle_of_starting_pods_the_agent_ends_with_one_of_each()
    {
        for (var i = 0; i < 4; i++)
        {
            Agent.WriteManifest($"burst{i}.yaml", Sleeper($"burst{i}"));
        }

        // Kill as soon as the first sandbox exists: the others are mid-flight.
        await Eventually.Until(async () => (await Containerd.Runtime.ListPodSandboxAsync(null, CancellationToken.None)).Count > 0, TimeSpan.FromSeconds(30), () => "no sandbox appeared");
        await Agent.KillAsync();

        var again = NewAgent(Agent.WorkDir);
        await again.StartAsync();
        for (var i = 0; i < 4; i++)
        {
            var pod = await again.WaitForPodAsync($"burst{i}", IsRunning, what: "Running");
            Assert.Single(await SandboxesOf(pod), s => s.State == Cri.V1.PodSandboxState.SandboxReady);
            // One sandbox and one running container. A start that was in flight when the agent died
            // may have failed in containerd; that instance stays as the container's lastState, as
            // kubelet keeps one dead instance, and counts as a restart.
            await Eventually.Until(async () =>
                {
                    var containers = await ContainersOf(pod);
                    var current = await again.PodAsync($"burst{i}");
                    var restarts = current is null ? -1 : Status(current, "app").RestartCount;
                    return (await SandboxesOf(pod)).Count == 1
                        && containers.Count(c => c.State == Cri.V1.ContainerState.ContainerRunning) == 1
                        && containers.Count(c => c.State == Cri.V1.ContainerState.ContainerExited) == restarts
                        && restarts <= 1 && containers.Count == 1 + restarts;
                }, TimeSpan.FromSeconds(30),
                () => $"duplicates left for burst{i}: {Describe(SandboxesOf(pod).Result, ContainersOf(pod).Result)}\n{again.Log}");
        }
    }

    private static string Describe(IReadOnlyList<Cri.V1.PodSandbox> sandboxes, IReadOnlyList<Cri.V1.Container> containers) =>
        "sandboxes [" + string.Join(", ", sandboxes.Select(s => $"{s.Id[..12]} {s.State} attempt {s.Metadata.Attempt}")) + "] containers ["
        + string.Join(", ", containers.Select(c => $"{c.Id[..12]} {c.State} in {c.PodSandboxId[..12]} attempt {c.Metadata.Attempt}")) + "]";

    [Fact]
    public async Task Pods_removed_while_the_agent_was_down_are_removed_when_it_returns()
    {
        Agent.WriteManifest("gone.yaml", Sleeper("gone"));
        Agent.WriteManifest("stays.yaml", Sleeper("stays"));
        var gone = await Agent.WaitForPodAsync("gone", IsRunning, what: "Running");
        await Agent.WaitForPodAsync("stays", IsRunning, what: "Running");
        await Agent.StopAsync();
        Assert.Contains("pods keep running", Agent.Log);
        Agent.RemoveManifest("gone.yaml");

        var again = NewAgent(Agent.WorkDir);
        await again.StartAsync();
        await Eventually.Until(async () => (await SandboxesOf(gone)).Count == 0, TimeSpan.FromSeconds(60), () => "orphan sandbox not removed\n" + again.Log);
        await again.WaitForPodAsync("stays", IsRunning, what: "still Running");
        Assert.Null(await again.PodAsync("gone"));
    }

    [Fact]
    public async Task Containerd_restarting_under_the_agent_changes_nothing_for_the_pods()
    {
        Agent.WriteManifest("steady.yaml", Sleeper("steady"));
        var before = await Agent.WaitForPodAsync("steady", IsRunning, what: "Running");
        await Containerd.RestartContainerdAsync();
        Agent.WriteManifest("after.yaml", Sleeper("after"));
        await Agent.WaitForPodAsync("after", IsRunning, what: "a pod created after the restart");
        var steady = await Agent.WaitForPodAsync("steady", IsRunning, what: "still Running");
        Assert.Equal(ContainerId(before, "app"), ContainerId(steady, "app"));
        Assert.Equal(0, Status(steady, "app").RestartCount);
        Assert.Equal(HttpStatusCode.OK, await Agent.HealthzAsync());
    }

    [Fact]
    public async Task Malformed_manifests_are_reported_and_the_rest_run()
    {
        Agent.WriteManifest("good.yaml", Sleeper("good"));
        Agent.WriteManifest("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: broken\n");
        Agent.WriteManifest("noimage.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers: [{name: app}]\n");
        Agent.WriteManifest("badname.yaml", $"apiVersion: v1\nkind: Pod\nmetadata: {{name: Bad_Name}}\nspec:\n  containers: [{{name: app, image: {Image}}}]\n");
        Agent.WriteManifest("types.json", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"types"},"spec":{"containers":"nope"}}""");

        await Agent.WaitForPodAsync("good", IsRunning, what: "Running");
        var pods = await Agent.PodsAsync();
        string Reason(string name) => pods.Items.Single(p => p.Metadata.Name == name).Status.Message;
        Assert.All(pods.Items.Where(p => p.Metadata.Name != "good-test-node"), p => Assert.Equal(("Failed", "InvalidManifest"), (p.Status.Phase, p.Status.Reason)));
        Assert.Contains("not valid YAML", Reason("broken"));
        Assert.Contains("spec.containers[0].image: Required value", Reason("noimage-test-node"));
        Assert.Contains("metadata.name: Invalid value \"Bad_Name\"", Reason("Bad_Name-test-node"));
        Assert.Contains("spec.containers", Reason("types"));
        Assert.Contains("Static pod manifest", Agent.Log);
        Assert.False(Agent.HasExited);
    }

    [Fact]
    public async Task A_torn_state_file_is_reported_and_skipped()
    {
        Agent.WriteManifest("fine.yaml", Sleeper("fine"));
        await Agent.WaitForPodAsync("fine", IsRunning, what: "Running");
        await Agent.KillAsync();
        File.WriteAllText(Path.Combine(Agent.StateDir, "desired", "0000-torn.json"), "{\"source\":\"file\",\"pod\":\"{\\\"apiVe");
        File.WriteAllText(Path.Combine(Agent.StateDir, "status", "0000-torn.json"), "garbage");

        var again = NewAgent(Agent.WorkDir);
        await again.StartAsync();
        await again.WaitForPodAsync("fine", IsRunning, what: "Running after restart");
        Assert.Contains("Skipping unreadable desired-pod file", again.Log);
        Assert.Contains("0000-torn.json", again.Log);
    }

    [Fact]
    public async Task Changing_a_manifest_replaces_the_pod()
    {
        Agent.WriteManifest("change.yaml", Sleeper("change"));
        var first = await Agent.WaitForPodAsync("change", IsRunning, what: "Running");
        Agent.WriteManifest("change.yaml", Sleeper("change").Replace("\"3600\"", "\"3601\""));
        var second = await Agent.WaitForPodAsync("change", p => IsRunning(p) && p.Metadata.Uid != first.Metadata.Uid, what: "replaced");
        await Eventually.Until(async () => (await SandboxesOf(first)).Count == 0, TimeSpan.FromSeconds(60), () => "old pod not removed");
        Assert.Single(await SandboxesOf(second));
    }

    [Fact]
    public async Task The_read_only_endpoint_serves_pods_healthz_and_metrics()
    {
        Agent.WriteManifest("seen.yaml", Sleeper("seen"));
        await Agent.WaitForPodAsync("seen", IsRunning, what: "Running");
        var list = KubernetesJson.Deserialize<k8s.Models.V1PodList>(await Agent.GetAsync("/pods"));
        Assert.Equal(("v1", "PodList"), (list.ApiVersion, list.Kind));
        Assert.Equal("test-node", list.Items.Single().Spec.NodeName);
        Assert.Equal("ok", await Agent.GetAsync("/healthz"));
        var metrics = await Agent.GetAsync("/metrics");
        Assert.Contains("edgekube_agent_pods{phase=\"Running\"} 1", metrics);
        Assert.Contains("edgekube_agent_runtime_up 1", metrics);
        Assert.Contains("process_resident_memory_bytes", metrics);
        Assert.Contains("404", await Agent.GetAsync("/nope"));
    }

    [Fact]
    public async Task A_taken_read_only_port_gets_one_warning_the_pods_run_on_and_it_is_served_once_free()
    {
        await Agent.StopAsync();
        var agent = NewAgent(Agent.WorkDir);
        agent.WriteManifest("keep.yaml", Sleeper("keep"));
        var holder = new System.Net.Sockets.TcpListener(IPAddress.Loopback, agent.Port);
        holder.Start();
        try
        {
            await agent.StartAsync(waitHealthy: false);
            var warning = $"Cannot serve the read-only endpoint on 127.0.0.1:{agent.Port} (--read-only-port, --address)";
            await Eventually.Until(() => Task.FromResult(agent.Log.Contains(warning, StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => "no warning about the port:\n" + agent.Log);

            // The pod starts all the same, as containerd shows.
            var filter = new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } };
            filter.LabelSelector.Add(RuntimeLabels.PodName, "keep-test-node");
            await Eventually.Until(async () => (await Containerd.Runtime.ListPodSandboxAsync(filter, CancellationToken.None)).Count == 1, TimeSpan.FromSeconds(60),
                () => "the static pod did not start while the port was taken:\n" + agent.Log);
            Assert.False(agent.HasExited);
        }
        finally
        {
            holder.Stop();
        }

        // Freed, the port is taken up on the next try, and the warning was said once for the whole wait.
        await Eventually.Until(async () => await agent.HealthzAsync() == HttpStatusCode.OK, TimeSpan.FromSeconds(30), () => "endpoint never served once the port was free:\n" + agent.Log);
        Assert.Contains($"Read-only endpoint on http://127.0.0.1:{agent.Port}", agent.Log);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(agent.Log, "Cannot serve the read-only endpoint"));
        Assert.True(IsRunning(await agent.WaitForPodAsync("keep-test-node", IsRunning, what: "Running")));
        Agent = agent;
    }

    [Fact]
    public async Task A_missing_socket_gets_one_clear_line_and_a_bad_setting_stops_the_agent()
    {
        var lost = new AgentProcess("/tmp/edgekube-no-such.sock");
        await using (lost)
        {
            await lost.StartAsync(waitHealthy: false);
            await Eventually.Until(() => Task.FromResult(lost.Log.Contains("/tmp/edgekube-no-such.sock")), TimeSpan.FromSeconds(30), () => "no error about the socket:\n" + lost.Log);
            Assert.Contains("--containerd-socket", lost.Log);
            Assert.False(lost.HasExited);
        }

        var bad = new AgentProcess(Containerd.SocketPath) { ExtraArgs = ["--address", "not-an-ip"] };
        await using (bad)
        {
            await bad.StartAsync(waitHealthy: false);
            await Eventually.Until(() => Task.FromResult(bad.HasExited), TimeSpan.FromSeconds(30), () => "agent with a bad setting kept running");
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("invalid setting --address", bad.Log);
        }
    }
}
