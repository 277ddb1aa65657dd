using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The real edgekube-master, a real agent joined with the config `node add` printed, the real
/// containerd, and the real kubectl driving it all, as a person would.
/// </summary>
[Collection("containerd")]
public sealed class ClusterTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    [Fact]
    public async Task Kubectl_drives_the_cluster_info_nodes_and_pods_end_to_end()
    {
        Assert.Contains($"nodeName: {Node}", JoinConfig);
        Assert.Contains($"url: mqtt://127.0.0.1:{Master.MqttPort}", JoinConfig);
        Assert.Contains("is running at https://127.0.0.1:" + Master.ApiPort, await Master.Kubectl("cluster-info"));
        Assert.Contains("Server Version: v1.32", await Master.Kubectl("version"));

        await WaitForNodeReadyAsync();
        var nodes = await Master.Kubectl("get", "nodes");
        Assert.Matches($@"(?m)^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION", nodes);
        Assert.Matches($@"(?m)^{Node}\s+Ready\s+<none>", nodes);
        var wide = await Master.Kubectl("get", "nodes", "-o", "wide");
        Assert.Matches(@"INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME", wide);
        Assert.Contains("containerd://", wide);
        Assert.Contains("kubernetes.io/arch", await Master.Kubectl("get", "node", Node, "-o", "yaml"));
        Assert.Equal("linux", (await Master.Kubectl("get", "node", Node, "-o", "jsonpath={.metadata.labels.kubernetes\\.io/os}")).Trim());
        Assert.Contains("\"kind\": \"Node\"", await Master.Kubectl("get", "node", Node, "-o", "json"));

        await Master.Kubectl("label", "node", Node, "zone=greenhouse");
        await Master.Kubectl("annotate", "node", Node, "edgekube.io/note=by-the-window");
        Assert.Contains("zone=greenhouse", await Master.Kubectl("get", "nodes", "--show-labels"));
        Assert.Equal("by-the-window", (await Master.Kubectl("get", "node", Node, "-o", "jsonpath={.metadata.annotations.edgekube\\.io/note}")).Trim());

        // A pod through kubectl apply, scheduled onto the board, run by the agent on containerd.
        await ApplyAsync(PodYaml("web", Image, "nodeSelector: {zone: greenhouse}"));
        await WaitForPhaseAsync("web", "Running");
        var pods = await Master.Kubectl("get", "pods", "-o", "wide");
        Assert.Matches($@"(?m)^web\s+1/1\s+Running\s+0\s+\S+\s+10\.\S+\s+{Node}", pods);
        Assert.Contains("web", await Master.Kubectl("get", "pods", "-A"));
        Assert.Contains("web", await Master.Kubectl("get", "pods", "-n", "default", "-l", "tier=edge"));
        Assert.Contains("No resources found", await Master.Kubectl("get", "pods", "-l", "tier=cloud"));
        await Eventually.Until(async () => (await Master.KubectlAsync("logs", "web")).Output.Contains("hello from web"), TimeSpan.FromSeconds(30), () => "no logs");
        Assert.Matches(@"^tick-\d+$", (await Master.Kubectl("logs", "web", "--tail", "1")).Trim());
        Assert.Contains("hello from web", await Master.Kubectl("logs", "web", "-c", "app"));

        var describe = await Master.Kubectl("describe", "pod", "web");
        Assert.Contains($"Node:", describe);
        Assert.Contains("Successfully assigned default/web to " + Node, describe);
        Assert.Matches(@"(?m)^\s+Ready\s+True\s", await Master.Kubectl("describe", "node", Node));

        // Apply again with another image: the same pod, its container restarted with the new image.
        var uid = (await Master.Kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}")).Trim();
        await ApplyAsync(PodYaml("web", ContainerdFixture.RegistryImage, "nodeSelector: {zone: greenhouse}"));
        await Eventually.Until(async () => (await Master.KubectlAsync("get", "pod", "web", "-o", "jsonpath={.status.containerStatuses[0].image}")).Output.Trim() == ContainerdFixture.RegistryImage,
            TimeSpan.FromSeconds(60), () => "image not updated\n" + AgentProcess.Tail(Agent.Log, 30));
        Assert.Equal(uid, (await Master.Kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}")).Trim());

        // An unschedulable pod says why, as kube-scheduler does.
        await ApplyAsync(PodYaml("nowhere", Image, "nodeSelector: {zone: moon}"));
        await Eventually.Until(async () => (await Master.KubectlAsync("describe", "pod", "nowhere")).Output.Contains("FailedScheduling"), TimeSpan.FromSeconds(30), () => "no FailedScheduling event");
        var unschedulable = await Master.Kubectl("get", "pod", "nowhere", "-o", "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}");
        Assert.Equal("Unschedulable", unschedulable.Trim());
        Assert.Contains("didn't match Pod's node affinity/selector", await Master.Kubectl("describe", "pod", "nowhere"));

        // kubectl delete returns once the node has stopped the pod.
        await Master.Kubectl("delete", "pod", "web");
        Assert.Contains("NotFound", (await Master.KubectlAsync("get", "pod", "web")).Output);
        var left = await ContainersOf(new k8s.Models.V1Pod { Metadata = new k8s.Models.V1ObjectMeta { Uid = uid } }, "app");
        Assert.DoesNotContain(left, c => c.State == Cri.V1.ContainerState.ContainerRunning);
        await Master.Kubectl("delete", "pod", "nowhere");
    }

    [Fact]
    public async Task Bad_requests_get_clear_errors_and_credentials_are_required()
    {
        await WaitForNodeReadyAsync();
        var (code, output) = await Master.KubectlAsync("get", "pod", "missing");
        Assert.NotEqual(0, code);
        Assert.Contains("pods \"missing\" not found", output);

        var bad = Path.Combine(Master.DataDir, "bad.yaml");
        File.WriteAllText(bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: app}]\n");
        (code, output) = await Master.KubectlAsync("apply", "-f", bad);
        Assert.NotEqual(0, code);
        Assert.Contains("is invalid", output);
        Assert.Contains("spec.containers[0].image: Required value", output);

        // A wrong token gets nothing.
        var anonymous = Path.Combine(Master.DataDir, "anonymous.kubeconfig");
        File.WriteAllText(anonymous, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(Master.Kubeconfig), "token: [0-9a-f]+", "token: not-the-token"));
        var (anonCode, anonOutput) = await MasterProcess.RunAsync("kubectl", ["--kubeconfig", anonymous, "get", "nodes"]);
        Assert.NotEqual(0, anonCode);
        Assert.Contains("Unauthorized", anonOutput);

        // The master keeps serving after all of it.
        Assert.Contains(Node, await Master.Kubectl("get", "nodes"));
    }

    [Fact]
    public async Task A_master_restart_loses_nothing_and_a_killed_agent_makes_its_node_not_ready()
    {
        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("keeper", Image));
        await WaitForPhaseAsync("keeper", "Running");

        await Master.StopAsync();
        await Master.StartAsync();
        await WaitForPhaseAsync("keeper", "Running");
        Assert.Contains("keeper", await Master.Kubectl("get", "pods"));

        await Agent.KillAsync();
        await Eventually.Until(async () => (await Master.KubectlAsync("get", "node", Node)).Output.Contains("NotReady"), TimeSpan.FromSeconds(60),
            () => "node not NotReady after the agent was killed\n" + AgentProcess.Tail(Master.Log, 20));
        Assert.Contains("node.kubernetes.io/unreachable", await Master.Kubectl("get", "node", Node, "-o", "jsonpath={.spec.taints}"));
        // describe node shows the node controller's event.
        var described = await Master.Kubectl("describe", "node", Node);
        Assert.Matches(@"(?m)^\s+Normal\s+NodeNotReady\s+.*Node test-node status is now: NodeNotReady", described);
    }
}
