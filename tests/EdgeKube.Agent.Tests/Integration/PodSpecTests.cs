using System.Net;
using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>Pod spec features, each run by the real agent on the real containerd.</summary>
[Collection("containerd")]
public sealed class PodSpecTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    [Fact]
    public async Task Init_containers_run_in_order_before_the_app_containers()
    {
        Agent.WriteManifest("init.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: init}
            spec:
              volumes: [{name: work, emptyDir: {} }]
              initContainers:
              - {name: first, image: {{Image}}, command: [sh, -c, "echo first >> /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
              - {name: second, image: {{Image}}, command: [sh, -c, "sleep 1; echo second >> /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
              containers:
              - {name: app, image: {{Image}}, command: [sh, -c, "echo app >> /work/order; exec sleep 3600"], volumeMounts: [{name: work, mountPath: /work}]}
              - {name: sidecar, image: {{Image}}, command: [sleep, "3600"], volumeMounts: [{name: work, mountPath: /work}]}
            """);
        var pod = await Agent.WaitForPodAsync("init", IsRunning, what: "Running");
        Assert.All(pod.Status.InitContainerStatuses, s => Assert.Equal("Completed", s.State.Terminated.Reason));
        Assert.Equal("True", pod.Status.Conditions.Single(c => c.Type == "Initialized").Status);
        var (code, order) = await ExecAsync(pod, "sidecar", "cat", "/work/order");
        Assert.Equal(0, code);
        Assert.Equal("first\nsecond\napp", order);
        Assert.Single(await SandboxesOf(pod));
    }

    [Fact]
    public async Task Command_args_env_field_refs_and_working_dir_reach_the_container()
    {
        Agent.WriteManifest("env.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: env, namespace: kube-system}
            spec:
              containers:
              - name: app
                image: {{Image}}
                command: [sh, -c]
                args: ["echo \"$(GREETING) from $POD_NAME\" > /tmp/said; exec sleep 3600"]
                workingDir: /tmp
                env:
                - {name: GREETING, value: hello}
                - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name} } }
                - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace} } }
                - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid} } }
                - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName} } }
                - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP} } }
                - {name: COMBINED, value: "$(GREETING)-$(NODE_NAME)"}
            """);
        var pod = await Agent.WaitForPodAsync("env", IsRunning, what: "Running");
        var (_, env) = await ExecAsync(pod, "app", "env");
        var vars = env.Split('\n').Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("hello", vars["GREETING"]);
        Assert.Equal("env-test-node", vars["POD_NAME"]);
        Assert.Equal("kube-system", vars["POD_NAMESPACE"]);
        Assert.Equal(pod.Metadata.Uid, vars["POD_UID"]);
        Assert.Equal("test-node", vars["NODE_NAME"]);
        Assert.Equal(pod.Status.PodIP, vars["POD_IP"]);
        Assert.StartsWith("10.", vars["POD_IP"]);
        Assert.Equal("hello-test-node", vars["COMBINED"]);
        Assert.Equal("/tmp", (await ExecAsync(pod, "app", "pwd")).Output);
        Assert.Equal("hello from env-test-node", (await ExecAsync(pod, "app", "cat", "/tmp/said")).Output);
    }

    [Fact]
    public async Task Cpu_and_memory_limits_are_cgroup_values_in_the_container()
    {
        Agent.WriteManifest("limits.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: limits}
            spec:
              containers:
              - name: app
                image: {{Image}}
                command: [sleep, "3600"]
                resources:
                  requests: {cpu: 250m, memory: 32Mi}
                  limits: {cpu: 500m, memory: 64Mi}
            """);
        var pod = await Agent.WaitForPodAsync("limits", IsRunning, what: "Running");
        Assert.Equal("Burstable", pod.Status.QosClass);
        var v2 = (await ExecAsync(pod, "app", "test", "-f", "/sys/fs/cgroup/cgroup.controllers")).ExitCode == 0;
        if (v2)
        {
            Assert.Equal("67108864", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/memory.max")).Output);
            Assert.Equal("50000 100000", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/cpu.max")).Output);
        }
        else
        {
            Assert.Equal("67108864", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")).Output);
            Assert.Equal("50000", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")).Output);
            Assert.Equal("100000", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")).Output);
            Assert.Equal("256", (await ExecAsync(pod, "app", "cat", "/sys/fs/cgroup/cpu/cpu.shares")).Output);
        }
    }

    [Fact]
    public async Task Empty_dir_is_shared_and_host_path_honours_read_only()
    {
        var host = Directory.CreateTempSubdirectory("edgekube-hostpath-").FullName;
        File.WriteAllText(Path.Combine(host, "from-host"), "host says hi");
        Agent.WriteManifest("volumes.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: volumes}
            spec:
              volumes:
              - {name: scratch, emptyDir: {} }
              - {name: data, hostPath: {path: {{host}}, type: Directory} }
              - {name: made, hostPath: {path: {{host}}/made, type: DirectoryOrCreate} }
              containers:
              - name: writer
                image: {{Image}}
                command: [sh, -c, "echo shared > /scratch/file; echo written > /made/out; exec sleep 3600"]
                volumeMounts: [{name: scratch, mountPath: /scratch}, {name: made, mountPath: /made}]
              - name: reader
                image: {{Image}}
                command: [sleep, "3600"]
                volumeMounts: [{name: scratch, mountPath: /scratch}, {name: data, mountPath: /data, readOnly: true}]
            """);
        var pod = await Agent.WaitForPodAsync("volumes", IsRunning, what: "Running");
        await Eventually.Until(async () => (await ExecAsync(pod, "reader", "cat", "/scratch/file")).Output == "shared", TimeSpan.FromSeconds(10), () => "emptyDir not shared");
        Assert.Equal("host says hi", (await ExecAsync(pod, "reader", "cat", "/data/from-host")).Output);
        var (code, output) = await ExecAsync(pod, "reader", "touch", "/data/nope");
        Assert.NotEqual(0, code);
        Assert.Contains("Read-only file system", output);
        Assert.False(File.Exists(Path.Combine(host, "nope")));
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(host, "made", "out")));
        Directory.Delete(host, recursive: true);
    }

    [Fact]
    public async Task A_missing_host_path_of_type_directory_is_create_container_config_error()
    {
        Agent.WriteManifest("badpath.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: badpath}
            spec:
              volumes: [{name: data, hostPath: {path: /nonexistent/edgekube, type: Directory} }]
              containers: [{name: app, image: {{Image}}, command: [sleep, "3600"], volumeMounts: [{name: data, mountPath: /data}]}]
            """);
        var pod = await Agent.WaitForPodAsync("badpath", p => Status(p, "app").State?.Waiting?.Reason == "CreateContainerConfigError", what: "CreateContainerConfigError");
        Assert.Contains("/nonexistent/edgekube", Status(pod, "app").State.Waiting.Message);
    }

    [Fact]
    public async Task Host_port_maps_to_the_container_and_host_network_shares_the_node()
    {
        var hostPort = AgentProcess.FreePort();
        var hostNetPort = AgentProcess.FreePort();
        Agent.WriteManifest("ports.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: web}
            spec:
              containers:
              - name: httpd
                image: {{Image}}
                command: [sh, -c, "mkdir -p /www && echo bridged > /www/index.html && exec httpd -f -p 80 -h /www"]
                ports: [{containerPort: 80, hostPort: {{hostPort}} }]
            """);
        Agent.WriteManifest("hostnet.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: hostnet}
            spec:
              hostNetwork: true
              containers:
              - name: httpd
                image: {{Image}}
                command: [sh, -c, "mkdir -p /www && echo host > /www/index.html && exec httpd -f -p 127.0.0.1:{{hostNetPort}} -h /www"]
            """);
        var web = await Agent.WaitForPodAsync("web", IsRunning, what: "Running");
        var hostnet = await Agent.WaitForPodAsync("hostnet", IsRunning, what: "Running");
        Assert.Equal("127.0.0.1", hostnet.Status.PodIP); // the node's IP (--node-ip)
        Assert.NotEqual(web.Status.PodIP, web.Status.HostIP);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        await Eventually.Until(async () => await TryGet(http, $"http://{web.Status.PodIP}/") == "bridged", TimeSpan.FromSeconds(20), () => "pod IP not reachable");
        var nodeIp = EdgeKube.Agent.Hosting.NodeFacts.PrimaryIPv4() ?? "127.0.0.1";
        await Eventually.Until(async () => await TryGet(http, $"http://{nodeIp}:{hostPort}/") == "bridged", TimeSpan.FromSeconds(20), () => $"hostPort {hostPort} not mapped on {nodeIp}");
        await Eventually.Until(async () => await TryGet(http, $"http://127.0.0.1:{hostNetPort}/") == "host", TimeSpan.FromSeconds(20), () => "hostNetwork pod not listening on the node");
    }

    private static async Task<string?> TryGet(HttpClient http, string url)
    {
        try
        {
            return (await http.GetStringAsync(url)).Trim();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }
}
