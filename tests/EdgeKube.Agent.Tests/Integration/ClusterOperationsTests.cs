using System.Text.RegularExpressions;
using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// What a person does day to day with kubectl against the master and its embedded broker, and what
/// happens when the board's agent goes away and comes back.
/// </summary>
[Collection("containerd")]
public sealed partial class ClusterOperationsTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    [Fact]
    public async Task Kubectl_create_get_watch_and_logs_follow()
    {
        await WaitForNodeReadyAsync();
        // -v=6 makes kubectl log its requests as their answers come: the watch is open once its GET answered.
        await using var watch = Master.KubectlStream("get", "pods", "-w", "-v=6");
        await Eventually.Until(() => Task.FromResult(Regex.IsMatch(watch.Output, @"GET \S+watch=true\S* 200 OK")), TimeSpan.FromSeconds(30),
            () => "kubectl get pods -w did not open its watch: " + watch.Output);

        var file = WriteManifest(PodYaml("talker"));
        Assert.Contains("pod/talker created", await Master.Kubectl("create", "-f", file));
        var (code, again) = await Master.KubectlAsync("create", "-f", file);
        Assert.NotEqual(0, code);
        Assert.Contains("AlreadyExists", again);
        Assert.Contains("pods \"talker\" already exists", again);

        // The watch shows the pod as it moves from Pending to Running, line by line as kubectl prints changes.
        await Eventually.Until(() => Task.FromResult(RunningRow().IsMatch(watch.Output)), TimeSpan.FromSeconds(90), () => "watch never showed Running:\n" + watch.Output + Diagnostics);
        Assert.Matches(@"(?m)^talker\s+0/1\s+(Pending|ContainerCreating)\s", watch.Output);
        Assert.False(watch.HasExited, "kubectl get -w ended:\n" + watch.Output);

        // logs -f keeps streaming: lines written after it started arrive, and it ends when the pod goes.
        await using var follow = Master.KubectlStream("logs", "-f", "talker");
        await Eventually.Until(() => Task.FromResult(Ticks(follow.Output).Count > 0), TimeSpan.FromSeconds(30), () => "logs -f printed nothing: " + follow.Output + Diagnostics);
        var first = Ticks(follow.Output).Max();
        await Eventually.Until(() => Task.FromResult(Ticks(follow.Output).Max() >= first + 3), TimeSpan.FromSeconds(30), () => "logs -f did not follow: " + follow.Output);
        Assert.Contains("hello from talker", follow.Output);
        var ticks = Ticks(follow.Output);
        Assert.Equal(ticks.Distinct().Count(), ticks.Count); // no line twice

        await Master.Kubectl("delete", "pod", "talker");
        await Eventually.Until(() => Task.FromResult(follow.HasExited), TimeSpan.FromSeconds(30), () => "logs -f still running after the pod was deleted");
        await Eventually.Until(() => Task.FromResult(Regex.IsMatch(watch.Output, @"(?m)^talker\s+\S+\s+(Terminating|Completed)\s")), TimeSpan.FromSeconds(30),
            () => "watch never showed the deletion:\n" + watch.Output);
    }

    [Fact]
    public async Task An_agent_restart_keeps_its_pods_and_a_pod_deleted_while_its_node_is_away_goes_when_it_returns()
    {
        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("stays"));
        await ApplyAsync(PodYaml("goes"));
        await WaitForPhaseAsync("stays", "Running");
        await WaitForPhaseAsync("goes", "Running");
        var staysId = await ContainerIdAsync("stays");
        var goesUid = (await Master.Kubectl("get", "pod", "goes", "-o", "jsonpath={.metadata.uid}")).Trim();

        // The agent stops (a reboot, an update): its will marks the node offline at once.
        await Agent.StopAsync();
        await Eventually.Until(async () => (await Master.KubectlAsync("get", "node", Node)).Output.Contains("NotReady", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
            () => "node not NotReady after its agent stopped" + Diagnostics);

        // Deleted while the node is away: the pod waits, Terminating, for the node to stop it.
        await Master.Kubectl("delete", "pod", "goes", "--wait=false");
        Assert.Matches(@"(?m)^goes\s+\S+\s+Terminating\s", await Master.Kubectl("get", "pods"));
        var goesPod = new k8s.Models.V1Pod { Metadata = new k8s.Models.V1ObjectMeta { Uid = goesUid } };
        Assert.Contains(await ContainersOf(goesPod, "app"), c => c.State == Cri.V1.ContainerState.ContainerRunning);

        Agent = NewAgent(Agent.WorkDir, ["--config", Path.Combine(Agent.WorkDir, "agent.yaml")]);
        await Agent.StartAsync();
        await WaitForNodeReadyAsync();
        await WaitForPodGoneAsync("goes");
        Assert.DoesNotContain(await ContainersOf(goesPod, "app"), c => c.State == Cri.V1.ContainerState.ContainerRunning);

        // The other pod ran on through the restart: same container, no restart.
        await WaitForPhaseAsync("stays", "Running");
        Assert.Equal(staysId, await ContainerIdAsync("stays"));
        Assert.Equal("0", (await Master.Kubectl("get", "pod", "stays", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")).Trim());
    }

    private static List<int> Ticks(string output) =>
        TickLine().Matches(output).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    [GeneratedRegex(@"(?m)^tick-(\d+)\s*$")]
    private static partial Regex TickLine();

    [GeneratedRegex(@"(?m)^talker\s+1/1\s+Running\s")]
    private static partial Regex RunningRow();
}
