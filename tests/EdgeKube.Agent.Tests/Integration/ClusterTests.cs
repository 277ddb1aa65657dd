using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The real edgekube-master, a real agent joined with the config `node add` printed, the real
/// containerd, and the real kubectl driving it all, as a person would.
/// </summary>
[Collection("containerd")]
public sealed class ClusterTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    private const string Node = "test-node";
    private MasterProcess _master = null!;

    public override async Task InitializeAsync()
    {
        await RemoveAllManagedAsync();
        _master = new MasterProcess();
        await _master.StartAsync();
        var join = await _master.AddNodeAsync(Node);
        Assert.Contains($"nodeName: {Node}", join);
        Assert.Contains($"url: mqtt://127.0.0.1:{_master.MqttPort}", join);
        var workDir = Directory.CreateTempSubdirectory("edgekube-agent-").FullName;
        var config = Path.Combine(workDir, "agent.yaml");
        File.WriteAllText(config, join);
        Agent = NewAgent(workDir, ["--config", config]);
        await Agent.StartAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _master.DisposeAsync();
    }

    private Task WaitForNodeReadyAsync() =>
        Eventually.Until(async () => (await _master.KubectlAsync("get", "node", Node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Output.Trim() == "True",
            TimeSpan.FromSeconds(60), () => "node never Ready\n" + AgentProcess.Tail(_master.Log, 30) + "\n" + AgentProcess.Tail(Agent.Log, 30));

    private Task WaitForPhaseAsync(string pod, string phase) =>
        Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", pod, "-o", "jsonpath={.status.phase}")).Output.Trim() == phase,
            TimeSpan.FromSeconds(90), () => $"pod {pod} never {phase}\n" + AgentProcess.Tail(_master.Log, 30) + "\n" + AgentProcess.Tail(Agent.Log, 30));

    private string PodYaml(string name, string image, string extra = "") => $$"""
        apiVersion: v1
        kind: Pod
        metadata:
          name: {{name}}
          labels: {app: {{name}}, tier: edge}
        spec:
          terminationGracePeriodSeconds: 2
          {{extra}}
          containers:
          - name: app
            image: "{{image}}"
            command: [sh, -c, "trap 'exit 0' TERM; echo hello from {{name}}; echo second line; while true; do sleep 1; done"]
        """;

    private async Task ApplyAsync(string yaml)
    {
        var file = Path.Combine(_master.DataDir, Guid.NewGuid().ToString("N") + ".yaml");
        File.WriteAllText(file, yaml);
        await _master.Kubectl("apply", "-f", file);
    }

    [Fact]
    public async Task Kubectl_drives_the_cluster_info_nodes_and_pods_end_to_end()
    {
        Assert.Contains("is running at https://127.0.0.1:" + _master.ApiPort, await _master.Kubectl("cluster-info"));
        Assert.Contains("Server Version: v1.32", await _master.Kubectl("version"));

        await WaitForNodeReadyAsync();
        var nodes = await _master.Kubectl("get", "nodes");
        Assert.Matches($@"(?m)^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION", nodes);
        Assert.Matches($@"(?m)^{Node}\s+Ready\s+<none>", nodes);
        var wide = await _master.Kubectl("get", "nodes", "-o", "wide");
        Assert.Matches(@"INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME", wide);
        Assert.Contains("containerd://", wide);
        Assert.Contains("kubernetes.io/arch", await _master.Kubectl("get", "node", Node, "-o", "yaml"));
        Assert.Equal("linux", (await _master.Kubectl("get", "node", Node, "-o", "jsonpath={.metadata.labels.kubernetes\\.io/os}")).Trim());
        Assert.Contains("\"kind\": \"Node\"", await _master.Kubectl("get", "node", Node, "-o", "json"));

        await _master.Kubectl("label", "node", Node, "zone=greenhouse");
        await _master.Kubectl("annotate", "node", Node, "edgekube.io/note=by-the-window");
        Assert.Contains("zone=greenhouse", await _master.Kubectl("get", "nodes", "--show-labels"));
        Assert.Equal("by-the-window", (await _master.Kubectl("get", "node", Node, "-o", "jsonpath={.metadata.annotations.edgekube\\.io/note}")).Trim());

        // A pod through kubectl apply, scheduled onto the board, run by the agent on containerd.
        await ApplyAsync(PodYaml("web", Image, "nodeSelector: {zone: greenhouse}"));
        await WaitForPhaseAsync("web", "Running");
        var pods = await _master.Kubectl("get", "pods", "-o", "wide");
        Assert.Matches($@"(?m)^web\s+1/1\s+Running\s+0\s+\S+\s+10\.\S+\s+{Node}", pods);
        Assert.Contains("web", await _master.Kubectl("get", "pods", "-A"));
        Assert.Contains("web", await _master.Kubectl("get", "pods", "-n", "default", "-l", "tier=edge"));
        Assert.Contains("No resources found", await _master.Kubectl("get", "pods", "-l", "tier=cloud"));
        await Eventually.Until(async () => (await _master.KubectlAsync("logs", "web")).Output.Contains("hello from web"), TimeSpan.FromSeconds(30), () => "no logs");
        Assert.Equal("second line", (await _master.Kubectl("logs", "web", "--tail", "1")).Trim());
        Assert.Contains("hello from web", await _master.Kubectl("logs", "web", "-c", "app"));

        var describe = await _master.Kubectl("describe", "pod", "web");
        Assert.Contains($"Node:", describe);
        Assert.Contains("Successfully assigned default/web to " + Node, describe);
        Assert.Matches(@"(?m)^\s+Ready\s+True\s", await _master.Kubectl("describe", "node", Node));

        // Apply again with another image: the same pod, its container restarted with the new image.
        var uid = (await _master.Kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}")).Trim();
        await ApplyAsync(PodYaml("web", ContainerdFixture.RegistryImage, "nodeSelector: {zone: greenhouse}"));
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", "web", "-o", "jsonpath={.status.containerStatuses[0].image}")).Output.Trim() == ContainerdFixture.RegistryImage,
            TimeSpan.FromSeconds(60), () => "image not updated\n" + AgentProcess.Tail(Agent.Log, 30));
        Assert.Equal(uid, (await _master.Kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}")).Trim());

        // An unschedulable pod says why, as kube-scheduler does.
        await ApplyAsync(PodYaml("nowhere", Image, "nodeSelector: {zone: moon}"));
        await Eventually.Until(async () => (await _master.KubectlAsync("describe", "pod", "nowhere")).Output.Contains("FailedScheduling"), TimeSpan.FromSeconds(30), () => "no FailedScheduling event");
        var unschedulable = await _master.Kubectl("get", "pod", "nowhere", "-o", "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}");
        Assert.Equal("Unschedulable", unschedulable.Trim());
        Assert.Contains("didn't match Pod's node affinity/selector", await _master.Kubectl("describe", "pod", "nowhere"));

        // kubectl delete returns once the node has stopped the pod.
        await _master.Kubectl("delete", "pod", "web");
        Assert.Contains("NotFound", (await _master.KubectlAsync("get", "pod", "web")).Output);
        var left = await ContainersOf(new k8s.Models.V1Pod { Metadata = new k8s.Models.V1ObjectMeta { Uid = uid } }, "app");
        Assert.DoesNotContain(left, c => c.State == Cri.V1.ContainerState.ContainerRunning);
        await _master.Kubectl("delete", "pod", "nowhere");
    }

    [Fact]
    public async Task Bad_requests_get_clear_errors_and_credentials_are_required()
    {
        await WaitForNodeReadyAsync();
        var (code, output) = await _master.KubectlAsync("get", "pod", "missing");
        Assert.NotEqual(0, code);
        Assert.Contains("pods \"missing\" not found", output);

        var bad = Path.Combine(_master.DataDir, "bad.yaml");
        File.WriteAllText(bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: app}]\n");
        (code, output) = await _master.KubectlAsync("apply", "-f", bad);
        Assert.NotEqual(0, code);
        Assert.Contains("is invalid", output);
        Assert.Contains("spec.containers[0].image: Required value", output);

        // A wrong token gets nothing.
        var anonymous = Path.Combine(_master.DataDir, "anonymous.kubeconfig");
        File.WriteAllText(anonymous, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(_master.Kubeconfig), "token: [0-9a-f]+", "token: not-the-token"));
        var (anonCode, anonOutput) = await MasterProcess.RunAsync("kubectl", ["--kubeconfig", anonymous, "get", "nodes"]);
        Assert.NotEqual(0, anonCode);
        Assert.Contains("Unauthorized", anonOutput);

        // The master keeps serving after all of it.
        Assert.Contains(Node, await _master.Kubectl("get", "nodes"));
    }

    [Fact]
    public async Task A_master_restart_loses_nothing_and_a_killed_agent_makes_its_node_not_ready()
    {
        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("keeper", Image));
        await WaitForPhaseAsync("keeper", "Running");

        await _master.StopAsync();
        await _master.StartAsync();
        await WaitForPhaseAsync("keeper", "Running");
        Assert.Contains("keeper", await _master.Kubectl("get", "pods"));

        await Agent.KillAsync();
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "node", Node)).Output.Contains("NotReady"), TimeSpan.FromSeconds(60),
            () => "node not NotReady after the agent was killed\n" + AgentProcess.Tail(_master.Log, 20));
        Assert.Contains("node.kubernetes.io/unreachable", await _master.Kubectl("get", "node", Node, "-o", "jsonpath={.spec.taints}"));
    }
}
