using System.Text.Json;
using EdgeKube.Agent.Tests.Fixtures;
using EdgeKube.Protocol;
using k8s;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>Pods from the master over MQTT, through a real broker, run on the real containerd.</summary>
[Collection("containerd")]
public sealed class MqttPodsTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    private const string Node = "test-node";
    private const string Prefix = "edgekube/v1/nodes/test-node";
    private TestBroker _broker = null!;

    public override async Task InitializeAsync()
    {
        await RemoveAllManagedAsync();
        _broker = new TestBroker(new Dictionary<string, string> { [Node] = "node-secret" });
        await _broker.StartAsync();
        Agent = await StartJoinedAgentAsync(null);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _broker.DisposeAsync();
    }

    private async Task<AgentProcess> StartJoinedAgentAsync(string? workDir, bool waitHealthy = true)
    {
        workDir ??= Directory.CreateTempSubdirectory("edgekube-agent-").FullName;
        var config = Path.Combine(workDir, "agent.yaml");
        File.WriteAllText(config, $$"""
            apiVersion: edgekube.io/v1
            kind: AgentConfig
            nodeName: {{Node}}
            broker:
              url: mqtt://127.0.0.1:{{_broker.Port}}
              username: {{Node}}
              password: node-secret
              keepAliveSeconds: 5
            """);
        // A short lease (renewed every 2 s) so the test sees renewals; the default is 600 s.
        var agent = NewAgent(workDir, ["--config", config, "--node-lease-duration-seconds", "8"]);
        await agent.StartAsync(waitHealthy);
        return agent;
    }

    private string PodJson(string name, string uid, string rv, string command = "3600") => $$"""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"{{name}}","namespace":"default","uid":"{{uid}}","resourceVersion":"{{rv}}"},
         "spec":{"nodeName":"{{Node}}","containers":[{"name":"app","image":"{{Image}}","command":["sleep","{{command}}"]}]} }
        """;

    private static string Index(params (string Name, string Uid)[] pods) =>
        JsonSerializer.Serialize(new { resourceVersion = "1", items = pods.Select(p => new { @namespace = "default", name = p.Name, uid = p.Uid, resourceVersion = "1" }) });

    private static V1Pod Parse(string json) => KubernetesJson.Deserialize<V1Pod>(json);

    private bool LeaseNamesLatestStatus() =>
        _broker.Latest($"{Prefix}/lease") is { } lease && _broker.Latest($"{Prefix}/status") is { } status
        && JsonSerializer.Deserialize(lease, ProtocolJson.Default.Lease)?.Status == StatusDigest.Of(System.Text.Encoding.UTF8.GetBytes(status));

    [Fact]
    public async Task The_node_registers_runs_pushed_pods_and_reports_their_status()
    {
        Assert.Equal("online", await _broker.WaitForAsync($"{Prefix}/presence", p => p == "online"));
        // As kubelet, the node may first report NotReady until its first runtime check is done.
        var nodeJson = await _broker.WaitForAsync($"{Prefix}/status",
            p => p.Contains("\"Ready\"") && KubernetesJson.Deserialize<V1Node>(p).Status.Conditions.Single(c => c.Type == "Ready").Status == "True");
        var node = KubernetesJson.Deserialize<V1Node>(nodeJson);
        Assert.Equal(Node, node.Metadata.Name);
        Assert.Equal("linux", node.Metadata.Labels["kubernetes.io/os"]);
        Assert.Equal(Node, node.Metadata.Labels["kubernetes.io/hostname"]);
        Assert.Equal("True", node.Status.Conditions.Single(c => c.Type == "Ready").Status);
        Assert.StartsWith("containerd://", node.Status.NodeInfo.ContainerRuntimeVersion);
        Assert.True(node.Status.Capacity["cpu"].ToDecimal() >= 1);
        Assert.True(node.Status.Capacity["memory"].ToInt64() > 0);
        // The lease: the declared duration and the digest of the node status last published.
        await _broker.WaitForAsync($"{Prefix}/lease", p => JsonSerializer.Deserialize(p, ProtocolJson.Default.Lease) is { DurationSeconds: 8, Status.Length: 16 });
        await Eventually.Until(() => Task.FromResult(LeaseNamesLatestStatus()), TimeSpan.FromSeconds(30),
            () => $"the lease does not name the latest status: {_broker.Latest($"{Prefix}/lease")}");

        // The master's copy differs from what the lease names: asked, the node publishes its status again.
        var statuses = _broker.Seen.Count(m => m.Topic == $"{Prefix}/status");
        await _broker.PublishAsync($"{Prefix}/rpc/status", string.Empty, retain: false);
        await Eventually.Until(() => Task.FromResult(_broker.Seen.Count(m => m.Topic == $"{Prefix}/status") > statuses), TimeSpan.FromSeconds(30),
            () => "no status published again after rpc/status");

        await _broker.PublishAsync($"{Prefix}/pods/default/web", PodJson("web", "uid-web", "10"));
        await _broker.PublishAsync($"{Prefix}/pods", Index(("web", "uid-web")));
        var statusJson = await _broker.WaitForAsync($"{Prefix}/pods/default/web/status", p => p.Contains("\"phase\":\"Running\""));
        var status = Parse(statusJson);
        Assert.Equal("uid-web", status.Metadata.Uid);
        Assert.StartsWith("containerd://", status.Status.ContainerStatuses.Single().ContainerID);
        var pod = await Agent.WaitForPodAsync("web", IsRunning, what: "Running");
        Assert.Single(await SandboxesOf(pod));

        // Removed from the index: the pod is stopped and its status topic cleared.
        await _broker.PublishAsync($"{Prefix}/pods", Index());
        await _broker.PublishAsync($"{Prefix}/pods/default/web", string.Empty);
        await _broker.WaitForAsync($"{Prefix}/pods/default/web/status", p => p.Length == 0);
        await Eventually.Until(async () => (await SandboxesOf(pod)).Count == 0, TimeSpan.FromSeconds(60), () => "pod not removed");
        // The rpc/status request above wants no reply, so it was no malformed request: the rpc server used to warn about each one.
        Assert.Contains("Connected to broker", Agent.Log);
        Assert.DoesNotContain("has no response topic", Agent.Log);

        // A lost connection (SIGKILL) marks the node offline through its will.
        await Agent.KillAsync();
        await _broker.WaitForAsync($"{Prefix}/presence", p => p == "offline", TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Pods_keep_running_without_the_master_and_deletions_made_meanwhile_apply_on_return()
    {
        await _broker.PublishAsync($"{Prefix}/pods/default/a", PodJson("a", "uid-a", "1"));
        await _broker.PublishAsync($"{Prefix}/pods/default/b", PodJson("b", "uid-b", "1"));
        await _broker.PublishAsync($"{Prefix}/pods", Index(("a", "uid-a"), ("b", "uid-b")));
        var a = await Agent.WaitForPodAsync("a", IsRunning, what: "a Running");
        var b = await Agent.WaitForPodAsync("b", IsRunning, what: "b Running");

        // The agent goes down and comes back with no broker: it runs what it last had.
        var port = _broker.Port;
        await Agent.KillAsync();
        await _broker.DisposeAsync();
        var offline = await StartJoinedAgentAsync(Agent.WorkDir);
        await offline.WaitForPodAsync("a", IsRunning, what: "a still Running without the master");
        await offline.WaitForPodAsync("b", IsRunning, what: "b still Running without the master");
        // The pods are adopted from local state before the first connection attempt has given up.
        await Eventually.Until(() => Task.FromResult(offline.Log.Contains("Cannot reach broker", StringComparison.Ordinal)), TimeSpan.FromSeconds(30),
            () => "no broker error logged:\n" + offline.Log);

        // The master deleted b meanwhile; the broker comes back with the retained index.
        _broker = new TestBroker(new Dictionary<string, string> { [Node] = "node-secret" }, port);
        await _broker.StartAsync();
        await _broker.PublishAsync($"{Prefix}/pods/default/a", PodJson("a", "uid-a", "1"));
        await _broker.PublishAsync($"{Prefix}/pods", Index(("a", "uid-a")));
        await Eventually.Until(async () => (await SandboxesOf(b)).Count == 0, TimeSpan.FromSeconds(90), () => "b not removed after reconnect\n" + offline.Log);
        var stillA = await offline.WaitForPodAsync("a", IsRunning, what: "a kept");
        Assert.Equal(ContainerId(a, "app"), ContainerId(stillA, "app"));
        await _broker.WaitForAsync($"{Prefix}/pods/default/a/status", p => p.Contains("\"phase\":\"Running\""));
    }

    [Fact]
    public async Task Logs_are_served_over_mqtt_from_the_cri_log_files()
    {
        var pod = $$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"talker","namespace":"default","uid":"uid-talk","resourceVersion":"1"},
             "spec":{"nodeName":"{{Node}}","containers":[{"name":"app","image":"{{Image}}","command":["sh","-c","for i in 1 2 3 4 5; do echo line-$i; done; exec sleep 3600"]}]} }
            """;
        await _broker.PublishAsync($"{Prefix}/pods/default/talker", pod);
        await _broker.PublishAsync($"{Prefix}/pods", Index(("talker", "uid-talk")));
        await Agent.WaitForPodAsync("talker", IsRunning, what: "Running");

        var reply = string.Empty;
        await Eventually.Until(async () =>
        {
            await _broker.RequestAsync($"{Prefix}/rpc/logs", """{"namespace":"default","name":"talker","tailLines":2}""", $"{Prefix}/replies/r1", [1, 2, 3]);
            await Task.Delay(300);
            reply = _broker.Latest($"{Prefix}/replies/r1") ?? string.Empty;
            return reply.Contains("line-5");
        }, TimeSpan.FromSeconds(30), () => "no log reply: " + reply);
        var logs = JsonSerializer.Deserialize<JsonElement>(reply);
        Assert.Equal("line-4\nline-5\n", logs.GetProperty("content").GetString());
        Assert.True(logs.GetProperty("running").GetBoolean());

        await _broker.RequestAsync($"{Prefix}/rpc/logs", """{"namespace":"default","name":"nope"}""", $"{Prefix}/replies/r2", [4]);
        var missing = JsonSerializer.Deserialize<JsonElement>(await _broker.WaitForAsync($"{Prefix}/replies/r2", _ => true));
        Assert.Equal("pods \"nope\" not found", missing.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Garbage_and_stale_messages_are_rejected_and_everything_else_carries_on()
    {
        await _broker.PublishAsync($"{Prefix}/pods/default/garbage", "{ this is not json");
        await _broker.PublishAsync($"{Prefix}/pods/default/huge", new string('x', 300 * 1024));
        await _broker.PublishAsync($"{Prefix}/pods/default/other", PodJson("other", "uid-other", "1").Replace("\"nodeName\":\"test-node\"", "\"nodeName\":\"board-9\""));
        await _broker.PublishAsync($"{Prefix}/pods", "[not an index");
        // Retained: an agent that subscribes later gets only the newest index, so the garbage must be seen before it is replaced.
        await Eventually.Until(() => Task.FromResult(Agent.Log.Contains("Pod index from the master unreadable", StringComparison.Ordinal)), TimeSpan.FromSeconds(30),
            () => "garbage index not reported:\n" + Agent.Log);
        await _broker.PublishAsync($"{Prefix}/pods/default/web", PodJson("web", "uid-web", "7", "3600"));
        await _broker.PublishAsync($"{Prefix}/pods", Index(("web", "uid-web")));
        var web = await Agent.WaitForPodAsync("web", IsRunning, what: "Running");

        // An older resourceVersion of the same pod changes nothing.
        await _broker.PublishAsync($"{Prefix}/pods/default/web", PodJson("web", "uid-web", "3", "999"));
        await Eventually.Until(() => Task.FromResult(Agent.Log.Contains("Ignoring stale update of default/web")), TimeSpan.FromSeconds(30), () => Agent.Log);
        var same = await Agent.WaitForPodAsync("web", IsRunning, what: "Running");
        Assert.Equal(ContainerId(web, "app"), ContainerId(same, "app"));

        var pods = await Agent.PodsAsync();
        string Reason(string name) => pods.Items.Single(p => p.Metadata.Name == name).Status.Message;
        Assert.Contains("not valid JSON", Reason("garbage"));
        Assert.Contains("more than the 262144 accepted", Reason("huge"));
        Assert.Contains("bound to board-9", Reason("other"));
        Assert.False(Agent.HasExited);
    }
}
