using System.Text.Json.Nodes;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Tests.Fixtures;
using EdgeKube.Testing;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// Three real nodes on one machine, each in a network namespace of its own (a veth pair to a bridge on
/// the host) with its own containerd and agent; one real master on the host; the real kubectl. Pods
/// reach each other across nodes by pod IP (ping and TCP) without NAT; a node cut off and a node whose
/// agent is SIGKILLed go NotReady, get the taints, and lose (or, with edgekube.io/autonomy, keep) their
/// pods as their tolerations say; a removed node takes its routes with it. One setup for all of it:
/// it is heavy.
/// </summary>
[Collection("containerd")]
public sealed class ThreeNodeClusterTests(ContainerdFixture fixture) : IAsyncLifetime
{
    private static readonly int Tag = Environment.ProcessId % 10000;
    private readonly string _bridge = $"ekb{Tag}";
    private readonly string _net = PickHostSubnet();

    // Not the default 10.244.0.0/16: with br_netfilter on, traffic crossing the host bridge meets the host's
    // nat rules, and a containerd on the host (the quick start's) may masquerade its own 10.244.0.x pods.
    private readonly string _cluster = $"10.{160 + (Tag % 40)}";
    private readonly List<NodeUnderTest> _nodes = [];
    private MasterProcess _master = null!;

    private sealed class NodeUnderTest(string name, string netns, string hostVeth, string ip, string root)
    {
        public string Name { get; } = name;

        public string Netns { get; } = netns;

        public string HostVeth { get; } = hostVeth;

        public string Ip { get; } = ip;

        public string Root { get; } = root;

        public ContainerdInstance Containerd { get; set; } = null!;

        public CriRuntimeClient Runtime { get; set; } = null!;

        public AgentProcess Agent { get; set; } = null!;

        public string Config { get; set; } = null!;

        /// <summary>
        /// Runs a command in the node's network namespace only. Not <c>ip netns exec</c>: that also mounts a
        /// sysfs of its own over /sys, which hides the cgroup mount from runc.
        /// </summary>
        public IReadOnlyList<string> Launcher => ["nsenter", $"--net=/var/run/netns/{Netns}"];
    }

    public async Task InitializeAsync()
    {
        try
        {
            await SetUpAsync();
        }
        catch
        {
            // xunit does not dispose a class whose InitializeAsync failed: leave no namespaces or processes behind.
            await DisposeAsync();
            throw;
        }
    }

    private async Task SetUpAsync()
    {
        _ = fixture; // builds the test images and serialises with the other containerd tests
        await Sh("ip", "link", "add", _bridge, "type", "bridge");
        await Sh("ip", "addr", "add", $"{_net}.1/24", "dev", _bridge);
        await Sh("ip", "link", "set", _bridge, "up");

        _master = new MasterProcess { MqttAddress = $"{_net}.1", GracePeriodSeconds = 4 };
        await _master.StartAsync("--cluster-cidr", $"{_cluster}.0.0/16", "--node-cidr-mask-size", "24");

        for (var i = 1; i <= 3; i++)
        {
            var node = new NodeUnderTest($"n{i}", $"ek{Tag}n{i}", $"ek{Tag}h{i}", $"{_net}.{10 + i}", Directory.CreateTempSubdirectory($"edgekube-n{i}-").FullName);
            _nodes.Add(node);
            await Sh("ip", "netns", "add", node.Netns);
            await Sh("ip", "link", "add", node.HostVeth, "type", "veth", "peer", "name", "eth0", "netns", node.Netns);
            await Sh("ip", "link", "set", node.HostVeth, "master", _bridge, "up");
            await InNetns(node, "ip", "addr", "add", $"{node.Ip}/24", "dev", "eth0");
            await InNetns(node, "ip", "link", "set", "eth0", "up");
            await InNetns(node, "ip", "link", "set", "lo", "up");
            await InNetns(node, "ip", "route", "add", "default", "via", $"{_net}.1");

            var join = await _master.AddNodeAsync(node.Name);
            Assert.Contains($"url: mqtt://{_net}.1:{_master.MqttPort}", join);
            node.Config = Path.Combine(node.Root, "agent.yaml");
            // A short keepalive, so the broker sees a cut link (and sends the will) within seconds.
            File.WriteAllText(node.Config, join.Replace("  topicPrefix:", "  keepAliveSeconds: 3\n  topicPrefix:", StringComparison.Ordinal));

            node.Containerd = new ContainerdInstance(Path.Combine(node.Root, "containerd"), Path.Combine(node.Root, "cni"), node.Launcher);
            node.Containerd.WriteConfig();
            await node.Containerd.StartAsync();
            await node.Containerd.ImportImagesAsync(Path.Combine(ContainerdFixture.RepoRoot, "artifacts", "images"));
            node.Runtime = new CriRuntimeClient(node.Containerd.SocketPath, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
            node.Agent = NewAgent(node);
            await node.Agent.StartAsync();
        }

        foreach (var node in _nodes)
        {
            await Eventually.Until(async () => (await _master.KubectlAsync("get", "node", node.Name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.podCIDR}")).Output.Trim().StartsWith($"True {_cluster}.", StringComparison.Ordinal),
                TimeSpan.FromSeconds(60), () => $"node {node.Name} never Ready with a pod CIDR\n{AgentProcess.Tail(_master.Log, 30)}\n{AgentProcess.Tail(node.Agent.Log, 30)}");
        }
    }

    private AgentProcess NewAgent(NodeUnderTest node) =>
        new(node.Containerd.SocketPath, Path.Combine(node.Root, "agent"), node.Name)
        {
            Launcher = node.Launcher,
            CniConfDir = node.Containerd.CniConfDir,
            Address = node.Ip,
            NodeIp = node.Ip,
            ExtraArgs = ["--config", node.Config, "--node-lease-duration-seconds", "4"],
        };

    public async Task DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            if (node.Agent is not null)
            {
                await node.Agent.DisposeAsync();
            }

            if (node.Containerd is not null)
            {
                await node.Containerd.DestroyAsync(node.Runtime);
            }

            node.Runtime?.Dispose();
            await Sh(["ip", "netns", "del", node.Netns], check: false);
            try
            {
                Directory.Delete(node.Root, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        await Sh(["ip", "link", "del", _bridge], check: false);
        if (_master is not null)
        {
            await _master.DisposeAsync();
        }
    }

    [Fact]
    public async Task Pods_reach_each_other_across_nodes_failed_nodes_are_tainted_and_evicted_and_a_removed_node_takes_its_routes()
    {
        var (n1, n2, n3) = (_nodes[0], _nodes[1], _nodes[2]);
        var cidrs = new Dictionary<string, string>();
        foreach (var node in _nodes)
        {
            cidrs[node.Name] = (await _master.Kubectl("get", "node", node.Name, "-o", "jsonpath={.spec.podCIDR}")).Trim();
            Assert.Equal(cidrs[node.Name], (await _master.Kubectl("get", "node", node.Name, "-o", "jsonpath={.spec.podCIDRs[0]}")).Trim());
        }

        Assert.Equal(3, cidrs.Values.Distinct().Count());
        Assert.All(cidrs.Values, c => Assert.Matches($@"^{_cluster.Replace(".", "\\.", StringComparison.Ordinal)}\.[0-2]\.0/24$", c));

        // Every node has a route to the other two nodes' pod CIDRs via their addresses.
        foreach (var node in _nodes)
        {
            await Eventually.Until(async () =>
            {
                var routes = await RoutesAsync(node);
                return _nodes.Where(o => o != node).All(o => routes.Contains($"{cidrs[o.Name]} via {o.Ip}", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(30), () => $"routes on {node.Name}: {RoutesAsync(node).Result}\n{AgentProcess.Tail(node.Agent.Log, 20)}");
        }

        // One server pod per node; each answers on TCP 8080 with its name and the connections it sees (netstat), so NAT would show.
        foreach (var node in _nodes)
        {
            await ApplyAsync(Pod($"web-{node.Name}", node.Name,
                $"trap 'exit 0' TERM; nc -ll -p 8080 -e /bin/sh -c 'echo pong from web-{node.Name}; netstat -tn' & while true; do sleep 1; done"));
        }

        var ips = new Dictionary<string, string>();
        foreach (var node in _nodes)
        {
            await WaitForPhaseAsync($"web-{node.Name}", "Running");
            ips[node.Name] = (await _master.Kubectl("get", "pod", $"web-{node.Name}", "-o", "jsonpath={.status.podIP}")).Trim();
            Assert.True(PodCidrHolds(cidrs[node.Name], ips[node.Name]), $"pod IP {ips[node.Name]} outside {cidrs[node.Name]}");
        }

        foreach (var (from, to) in new[] { (n1, n2), (n2, n3), (n3, n1) })
        {
            var ping = await ExecAsync(from, $"web-{from.Name}", "ping", "-c", "2", "-W", "3", ips[to.Name]);
            Assert.True(ping.ExitCode == 0, $"ping {from.Name} -> {to.Name} ({ips[to.Name]}) failed: {ping.Stdout.ToStringUtf8()}{ping.Stderr.ToStringUtf8()}\n{await DiagnoseAsync(from, to)}");
            var tcp = await ExecAsync(from, $"web-{from.Name}", "nc", "-w", "5", ips[to.Name], "8080");
            var answer = tcp.Stdout.ToStringUtf8();
            Assert.Contains($"pong from web-{to.Name}", answer);
            // The server saw the client's own pod IP: no NAT between pods.
            Assert.Contains($"{ips[from.Name]}:", answer);
        }

        // ----- node failure -----
        await _master.Kubectl("annotate", "node", n2.Name, "edgekube.io/autonomy=true");
        await ApplyAsync(Pod("evict-me", n3.Name, "trap 'exit 0' TERM; while true; do sleep 1; done", tolerationSeconds: 2));
        await ApplyAsync(Pod("autonomous", n2.Name, "trap 'exit 0' TERM; while true; do sleep 1; done", tolerationSeconds: 2));
        await WaitForPhaseAsync("evict-me", "Running");
        await WaitForPhaseAsync("autonomous", "Running");
        var keptContainer = await ContainerIdAsync($"web-{n3.Name}");
        var autonomousContainer = await ContainerIdAsync("autonomous");
        var evictedContainer = await ContainerIdAsync("evict-me");
        Assert.Contains("tolerationSeconds\":300", await _master.Kubectl("get", "pod", $"web-{n3.Name}", "-o", "jsonpath={.spec.tolerations}"));

        await Sh("ip", "link", "set", n3.HostVeth, "down");   // n3's cable is pulled
        await n2.Agent.KillAsync();                           // n2's agent dies (SIGKILL)

        foreach (var node in new[] { n2, n3 })
        {
            await Eventually.Until(async () => (await _master.KubectlAsync("get", "node", node.Name)).Output.Contains("NotReady", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), () => $"{node.Name} not NotReady\n{AgentProcess.Tail(_master.Log, 30)}");
            var taints = await _master.Kubectl("get", "node", node.Name, "-o", "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}");
            Assert.Contains("node.kubernetes.io/unreachable:NoSchedule", taints);
            Assert.Contains("node.kubernetes.io/unreachable:NoExecute", taints);
        }

        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", $"web-{n3.Name}", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Output.Trim() == "False",
            TimeSpan.FromSeconds(30), () => "pod on the lost node not Ready=False\n" + AgentProcess.Tail(_master.Log, 20));
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", "evict-me", "-o", "jsonpath={.metadata.deletionTimestamp}")).Output.Trim().Length > 0,
            TimeSpan.FromSeconds(30), () => "evict-me was not evicted\n" + AgentProcess.Tail(_master.Log, 30));
        Assert.Contains("TaintManagerEviction", await _master.Kubectl("get", "events"));
        Assert.Contains("Terminating", await _master.Kubectl("get", "pod", "evict-me"));

        // Cut off, n3 keeps running everything it had: its agent stops nothing.
        Assert.True(await RunningAsync(n3, evictedContainer), "evict-me stopped on the cut-off node");
        Assert.True(await RunningAsync(n3, keptContainer), "web-n3 stopped on the cut-off node");

        // The autonomous node's pod outlives its 2 s toleration (evict-me, tainted no earlier, is gone already).
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(string.Empty, (await _master.Kubectl("get", "pod", "autonomous", "-o", "jsonpath={.metadata.deletionTimestamp}")).Trim());

        // Back: n3's evicted pod is removed from it, the other kept as it ran (same container, no restart).
        await Sh("ip", "link", "set", n3.HostVeth, "up");
        n2.Agent = NewAgent(n2);
        await n2.Agent.StartAsync();
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", "evict-me")).Output.Contains("NotFound", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), () => "evict-me not removed after n3 returned\n" + AgentProcess.Tail(n3.Agent.Log, 30));
        Assert.False(await RunningAsync(n3, evictedContainer), "evict-me still runs on n3");
        foreach (var node in new[] { n2, n3 })
        {
            await Eventually.Until(async () => (await _master.KubectlAsync("get", "node", node.Name)).Output.Contains(" Ready ", StringComparison.Ordinal),
                TimeSpan.FromSeconds(60), () => $"{node.Name} not Ready again\n{AgentProcess.Tail(node.Agent.Log, 20)}");
            Assert.Equal(string.Empty, (await _master.Kubectl("get", "node", node.Name, "-o", "jsonpath={.spec.taints}")).Trim());
        }

        Assert.Equal(keptContainer, await ContainerIdAsync($"web-{n3.Name}"));
        Assert.True(await RunningAsync(n3, keptContainer));
        Assert.Equal(autonomousContainer, await ContainerIdAsync("autonomous"));
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", $"web-{n3.Name}", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Output.Trim() == "True",
            TimeSpan.FromSeconds(30), () => "web-n3 not Ready again");

        // ----- a node leaves: node remove deletes it, and every other node drops its route -----
        await _master.RemoveNodeAsync(n3.Name);
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "node", n3.Name)).Output.Contains("NotFound", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), () => "n3 still listed\n" + AgentProcess.Tail(_master.Log, 20));
        foreach (var node in new[] { n1, n2 })
        {
            await Eventually.Until(async () => !(await RoutesAsync(node)).Contains(cidrs[n3.Name], StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), () => $"{node.Name} still routes {cidrs[n3.Name]}: {RoutesAsync(node).Result}");
            Assert.Contains($"{cidrs[(node == n1 ? n2 : n1).Name]} via {(node == n1 ? n2 : n1).Ip}", await RoutesAsync(node));
        }

        var stillPing = await ExecAsync(n1, $"web-{n1.Name}", "ping", "-c", "1", "-W", "3", ips[n2.Name]);
        Assert.Equal(0, stillPing.ExitCode);
    }

    /// <summary>What the two nodes' network looks like, for a failure message.</summary>
    private async Task<string> DiagnoseAsync(params NodeUnderTest[] nodes)
    {
        var text = new System.Text.StringBuilder();
        foreach (var node in nodes)
        {
            foreach (var command in new[] { "ip -4 addr", "ip -4 route", "iptables-save", "sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter" })
            {
                text.AppendLine($"--- {node.Name}: {command}").AppendLine(await ContainerdInstance.RunAsync("ip", ["netns", "exec", node.Netns, .. command.Split(' ')], check: false));
            }

            var others = string.Join(' ', _nodes.Select(n => n.Ip));
            var pod = await ExecAsync(node, $"web-{node.Name}", "sh", "-c", $"ip -4 addr; ip -4 route; ip neigh; for a in {others}; do ping -c1 -W1 $a >/dev/null && echo reaches node $a || echo does not reach node $a; done");
            text.AppendLine($"--- pod on {node.Name}").AppendLine(pod.Stdout.ToStringUtf8() + pod.Stderr.ToStringUtf8());
        }

        return text.ToString();
    }

    private static string Pod(string name, string node, string script, long? tolerationSeconds = null)
    {
        var spec = new JsonObject
        {
            ["nodeName"] = node,
            ["terminationGracePeriodSeconds"] = 2,
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = "app",
                ["image"] = ContainerdFixture.BusyboxImageName,
                ["imagePullPolicy"] = "IfNotPresent",
                ["command"] = new JsonArray("sh", "-c", script),
            }),
        };
        if (tolerationSeconds is { } seconds)
        {
            spec["tolerations"] = new JsonArray(
                new JsonObject { ["key"] = "node.kubernetes.io/unreachable", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = seconds },
                new JsonObject { ["key"] = "node.kubernetes.io/not-ready", ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = seconds });
        }

        return new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = new JsonObject { ["name"] = name }, ["spec"] = spec }.ToJsonString();
    }

    private async Task ApplyAsync(string json)
    {
        var file = Path.Combine(_master.DataDir, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(file, json);
        await _master.Kubectl("apply", "-f", file);
    }

    private Task WaitForPhaseAsync(string pod, string phase) =>
        Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", pod, "-o", "jsonpath={.status.phase}")).Output.Trim() == phase,
            TimeSpan.FromSeconds(60), () => $"pod {pod} never {phase}: {_master.KubectlAsync("get", "pod", pod, "-o", "yaml").Result.Output}\n{string.Join("\n", _nodes.Select(n => AgentProcess.Tail(n.Agent.Log, 15)))}");

    private async Task<string> ContainerIdAsync(string pod)
    {
        var id = (await _master.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")).Trim();
        Assert.StartsWith("containerd://", id);
        return id["containerd://".Length..];
    }

    private async Task<Cri.V1.ExecSyncResponse> ExecAsync(NodeUnderTest node, string pod, params string[] command) =>
        await node.Runtime.ExecSyncAsync(await ContainerIdAsync(pod), command, TimeSpan.FromSeconds(15), CancellationToken.None);

    private static async Task<bool> RunningAsync(NodeUnderTest node, string containerId) =>
        (await node.Runtime.ContainerStatusAsync(containerId, CancellationToken.None))?.State == Cri.V1.ContainerState.ContainerRunning;

    private static Task<string> RoutesAsync(NodeUnderTest node) => ContainerdInstance.RunAsync("ip", ["netns", "exec", node.Netns, "ip", "-4", "route", "show", "proto", "75"]);

    private static Task InNetns(NodeUnderTest node, params string[] command) => ContainerdInstance.RunAsync("ip", ["netns", "exec", node.Netns, .. command]);

    private static Task Sh(params string[] command) => ContainerdInstance.RunAsync(command[0], command[1..]);

    private static Task Sh(string[] command, bool check) => ContainerdInstance.RunAsync(command[0], command[1..], check);

    private static bool PodCidrHolds(string cidr, string ip) =>
        ip.StartsWith(cidr[..cidr.LastIndexOf('.')] + ".", StringComparison.Ordinal);

    /// <summary>A /24 for the host bridge that no route on this machine uses yet: 10.99.N.0/24.</summary>
    private static string PickHostSubnet()
    {
        var routes = File.Exists("/proc/net/route") ? File.ReadAllText("/proc/net/route") : string.Empty;
        for (var i = 0; i < 200; i++)
        {
            var octet = (Environment.ProcessId + i) % 200;
            if (!routes.Contains($"00{octet:X2}630A", StringComparison.Ordinal))
            {
                return $"10.99.{octet}";
            }
        }

        throw new InvalidOperationException("no free /24 in 10.99.0.0/16 for the test bridge");
    }
}
