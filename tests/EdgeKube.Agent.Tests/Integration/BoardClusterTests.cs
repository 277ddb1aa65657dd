using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The board end to end: the real master, a real agent whose sysfs root is a directory the test
/// writes (thermal zone, firmware throttled flags), the real containerd, and kubectl.
/// </summary>
[Collection("containerd")]
public sealed class BoardClusterTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    private const string Node = "test-node";
    private MasterProcess _master = null!;
    private string _sys = null!;

    public override async Task InitializeAsync()
    {
        await RemoveAllManagedAsync();
        _master = new MasterProcess();
        await _master.StartAsync();
        var join = await _master.AddNodeAsync(Node);
        var workDir = Directory.CreateTempSubdirectory("edgekube-agent-").FullName;
        _sys = Path.Combine(workDir, "sys");
        WriteSys("class/thermal/thermal_zone0/temp", "45000");
        WriteSys(EdgeKube.Agent.Node.HostReader.ThrottledFile, "0x0");
        var config = Path.Combine(workDir, "agent.yaml");
        File.WriteAllText(config, join + BoardYaml);
        Agent = NewAgent(workDir, ["--config", config, "--sysfs-root", _sys, "--system-reserved", "cpu=100m,memory=64Mi", "--kube-reserved", "memory=64Mi"]);
        await Agent.StartAsync();
    }

    private const string BoardYaml = """

        board:
          thermal: {throttleCelsius: 75, clearCelsius: 70}
        """;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _master.DisposeAsync();
    }

    private void WriteSys(string relative, string text)
    {
        var path = Path.Combine(_sys, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path + ".tmp", text + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private async Task<string> Jsonpath(string path) => (await _master.Kubectl("get", "node", Node, "-o", "jsonpath=" + path)).Trim();

    private Task WaitForAsync(string jsonpath, Func<string, bool> ok, string what) =>
        Eventually.Until(async () => ok((await _master.KubectlAsync("get", "node", Node, "-o", "jsonpath=" + jsonpath)).Output.Trim()), TimeSpan.FromSeconds(60),
            () => what + "\n" + AgentProcess.Tail(_master.Log, 20) + "\n" + AgentProcess.Tail(Agent.Log, 20));

    private static string Condition(string type) => $"{{.status.conditions[?(@.type==\"{type}\")].status}}";

    [Fact]
    public async Task A_hot_board_is_tainted_until_it_cools_and_under_voltage_likewise()
    {
        await WaitForAsync(Condition("Ready"), s => s == "True", "node never Ready");
        await WaitForAsync(Condition("ThermalThrottling"), s => s == "False", "no ThermalThrottling=False");
        Assert.Equal("False", await Jsonpath(Condition("UnderVoltage")));
        Assert.DoesNotContain("edgekube.io", await Jsonpath("{.spec.taints}"));
        // Allocatable honours --system-reserved and --kube-reserved.
        var cpus = int.Parse(await Jsonpath("{.status.capacity.cpu}"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal($"{(cpus * 1000) - 100}m", await Jsonpath("{.status.allocatable.cpu}"));

        // The temperature rises past the threshold: the condition, then the master's taint.
        WriteSys("class/thermal/thermal_zone0/temp", "82500");
        await WaitForAsync("{.spec.taints}", s => s.Contains("edgekube.io/thermal-throttling", StringComparison.Ordinal), "no thermal taint");
        Assert.Equal("True", await Jsonpath(Condition("ThermalThrottling")));
        var describe = await _master.Kubectl("describe", "node", Node);
        Assert.Matches(@"(?m)^\s+ThermalThrottling\s+True\s.*CPUTemperatureHigh\s+CPU temperature 82\.5°C reached the throttling threshold 75°C", describe);
        Assert.Matches(@"Taints:\s+edgekube.io/thermal-throttling:NoSchedule", describe);
        Assert.Contains("edgekube_node_cpu_temperature_celsius 82.5", await Agent.GetAsync("/metrics"));
        Assert.Contains("edgekube_node_condition{condition=\"ThermalThrottling\",status=\"true\"} 1", await Agent.GetAsync("/metrics"));

        // A pod without a toleration is not scheduled onto the hot board...
        var pod = Path.Combine(_master.DataDir, "cool.yaml");
        File.WriteAllText(pod, $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: cool}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
              - name: app
                image: "{{Image}}"
                command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
            """);
        await _master.Kubectl("apply", "-f", pod);
        await Eventually.Until(async () => (await _master.KubectlAsync("describe", "pod", "cool")).Output.Contains("untolerated taint {edgekube.io/thermal-throttling: }"),
            TimeSpan.FromSeconds(30), () => "no FailedScheduling for the taint\n" + AgentProcess.Tail(_master.Log, 20));

        // ...between the thresholds it stays hot; below the clear threshold the taint goes and the pod runs.
        WriteSys("class/thermal/thermal_zone0/temp", "72000");
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal("True", await Jsonpath(Condition("ThermalThrottling")));
        WriteSys("class/thermal/thermal_zone0/temp", "65000");
        await WaitForAsync(Condition("ThermalThrottling"), s => s == "False", "ThermalThrottling never cleared");
        await WaitForAsync("{.spec.taints}", s => !s.Contains("edgekube.io/thermal-throttling", StringComparison.Ordinal), "thermal taint never lifted");
        await Eventually.Until(async () => (await _master.KubectlAsync("get", "pod", "cool", "-o", "jsonpath={.status.phase}")).Output.Trim() == "Running",
            TimeSpan.FromSeconds(90), () => "pod never ran after the board cooled\n" + AgentProcess.Tail(_master.Log, 20) + AgentProcess.Tail(Agent.Log, 20));

        // The firmware reports under-voltage (0x50005): UnderVoltage and its taint; a good supply lifts it.
        WriteSys(EdgeKube.Agent.Node.HostReader.ThrottledFile, "0x50005");
        await WaitForAsync("{.spec.taints}", s => s.Contains("edgekube.io/under-voltage", StringComparison.Ordinal), "no under-voltage taint");
        Assert.Equal("UnderVoltageDetected", await Jsonpath("{.status.conditions[?(@.type==\"UnderVoltage\")].reason}"));
        WriteSys(EdgeKube.Agent.Node.HostReader.ThrottledFile, "0x50000");
        await WaitForAsync("{.spec.taints}", s => !s.Contains("edgekube.io/under-voltage", StringComparison.Ordinal), "under-voltage taint never lifted");
        Assert.Contains("under-voltage has occurred since boot", await Jsonpath("{.status.conditions[?(@.type==\"UnderVoltage\")].message}"));

        // Usage from CRI stats: the pod's cpu and memory on /metrics and /stats/summary.
        await Eventually.Until(async () => (await Agent.GetAsync("/metrics")).Contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"cool\"}"),
            TimeSpan.FromSeconds(40), () => "no pod usage on /metrics");
        var summary = System.Text.Json.JsonDocument.Parse(await Agent.GetAsync("/stats/summary")).RootElement;
        Assert.Equal(Node, summary.GetProperty("node").GetProperty("nodeName").GetString());
        Assert.True(summary.GetProperty("node").GetProperty("memory").GetProperty("workingSetBytes").GetInt64() > 0);
        var coolPod = summary.GetProperty("pods").EnumerateArray().Single(p => p.GetProperty("podRef").GetProperty("name").GetString() == "cool");
        Assert.True(coolPod.GetProperty("memory").GetProperty("workingSetBytes").GetInt64() > 0);
        Assert.Equal("app", coolPod.GetProperty("containers")[0].GetProperty("name").GetString());
        await _master.Kubectl("delete", "pod", "cool");
    }
}
