using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The board end to end: the real master, a real agent whose sysfs root is a directory the test
/// writes (thermal zone, firmware throttled flags), the real containerd, and kubectl.
/// </summary>
[Collection("containerd")]
public sealed class BoardClusterTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    private string _sys = null!;

    protected override async Task<string[]> PrepareAgentAsync(string workDir)
    {
        _sys = Path.Combine(workDir, "sys");
        WriteSys("class/thermal/thermal_zone0/temp", "45000");
        WriteSys(EdgeKube.Agent.Node.HostReader.ThrottledFile, "0x0");
        WriteW1("21500");
        WriteSys("class/leds/led0/trigger", "none [mmc0] heartbeat");
        WriteSys("class/leds/led1/trigger", "none [default-on]");
        // A stand-in for /dev/gpiochip0: a character device node with /dev/null's numbers.
        _device = Path.Combine(workDir, "gpiochip0");
        var (code, output) = await MasterProcess.RunAsync("mknod", [_device, "c", "1", "3"]);
        Assert.True(code == 0, output);
        return ["--sysfs-root", _sys, "--system-reserved", "cpu=100m,memory=64Mi", "--kube-reserved", "memory=64Mi"];
    }

    protected override string ExtraConfig => $$"""

        board:
          thermal: {throttleCelsius: 75, clearCelsius: 70}
          sensors:
          - {name: probe, type: ds18b20, interval: 200ms, delta: 0.5}
          - {name: cpu, type: cpu-temperature, interval: 500ms}
          - {name: air, type: bme280, bus: 99, address: 0x76, interval: 1s}
          leds: {boardLeds: [led0, led1]}
          devices:
          - {resource: edgekube.io/gpio, paths: ["{{_device}}:/dev/gpiochip0"]}
        """;

    private string _device = null!;

    private void WriteW1(string milli) =>
        WriteSys("bus/w1/devices/28-0316a4c2f1ff/w1_slave", $"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t={milli}");

    private string Led(string name) => File.ReadAllText(Path.Combine(_sys, "class/leds", name, "brightness")).Trim();

    private void WriteSys(string relative, string text)
    {
        var path = Path.Combine(_sys, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path + ".tmp", text + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private async Task<string> Jsonpath(string path) => (await Master.Kubectl("get", "node", Node, "-o", "jsonpath=" + path)).Trim();

    private Task WaitForAsync(string jsonpath, Func<string, bool> ok, string what) =>
        Eventually.Until(async () => ok((await Master.KubectlAsync("get", "node", Node, "-o", "jsonpath=" + jsonpath)).Output.Trim()), TimeSpan.FromSeconds(60),
            () => what + "\n" + AgentProcess.Tail(Master.Log, 20) + "\n" + AgentProcess.Tail(Agent.Log, 20));

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

        // Sensors: annotations with units, the structured form, labels, a missing sensor reported, gauges.
        await WaitForAsync("{.metadata.annotations.edgekube\\.io/probe\\.temperature}", s => s == "21.5 °C", "no probe annotation");
        Assert.Equal("ds18b20", await Jsonpath("{.metadata.labels.sensors\\.edgekube\\.io/probe}"));
        Assert.Equal("failed", await Jsonpath("{.metadata.labels.sensors\\.edgekube\\.io/air}"));
        Assert.Equal("45 °C", await Jsonpath("{.metadata.annotations.edgekube\\.io/cpu\\.temperature}"));
        Assert.Contains("/dev/i2c-99", await Jsonpath("{.metadata.annotations.edgekube\\.io/air\\.error}"));
        Assert.Contains("\"name\":\"probe\",\"type\":\"ds18b20\",\"readings\":[{\"quantity\":\"temperature\",\"value\":21.5,\"unit\":\"°C\"}]", await Jsonpath("{.metadata.annotations.edgekube\\.io/sensors}"));
        var columns = await Master.Kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,PROBE:.metadata.annotations.edgekube\\.io/probe\\.temperature");
        Assert.Matches($@"(?m)^{Node}\s+21\.5 °C", columns);
        var described = await Master.Kubectl("describe", "node", Node);
        Assert.Matches(@"(?m)^\s+SensorsReady\s+False\s.*SensorFailed\s+air \(bme280\): ", described);
        Assert.Contains("edgekube.io/probe.temperature: 21.5 °C", described);
        Assert.Contains("edgekube_sensor_value{sensor=\"probe\",type=\"ds18b20\",quantity=\"temperature\",unit=\"°C\"} 21.5", await Agent.GetAsync("/metrics"));
        Assert.Contains("edgekube_sensor_up{sensor=\"air\",type=\"bme280\"} 0", await Agent.GetAsync("/metrics"));
        // A change within the delta is read but not sent; one beyond it is.
        WriteW1("21800");
        await Eventually.Until(async () => (await Agent.GetAsync("/metrics")).Contains("quantity=\"temperature\",unit=\"°C\"} 21.8"), TimeSpan.FromSeconds(20), () => "probe not re-read");
        Assert.Equal("21.5 °C", await Jsonpath("{.metadata.annotations.edgekube\\.io/probe\\.temperature}"));
        WriteW1("24250");
        await WaitForAsync("{.metadata.annotations.edgekube\\.io/probe\\.temperature}", s => s == "24.25 °C", "probe change not sent");
        Assert.Equal("1", await Jsonpath("{.status.capacity.edgekube\\.io/gpio}"));

        // The LED board on the kernel LED class: green steady (led0) while all is well.
        await Eventually.Until(() => Task.FromResult(Led("led0") == "1" && Led("led1") == "0"), TimeSpan.FromSeconds(20), () => "LEDs not green: " + Led("led0") + Led("led1"));
        Assert.Equal("none", File.ReadAllText(Path.Combine(_sys, "class/leds/led0/trigger")).Trim());

        // The temperature rises past the threshold: the condition, then the master's taint.
        WriteSys("class/thermal/thermal_zone0/temp", "82500");
        await WaitForAsync("{.spec.taints}", s => s.Contains("edgekube.io/thermal-throttling", StringComparison.Ordinal), "no thermal taint");
        Assert.Equal("True", await Jsonpath(Condition("ThermalThrottling")));
        var describe = await Master.Kubectl("describe", "node", Node);
        Assert.Matches(@"(?m)^\s+ThermalThrottling\s+True\s.*CPUTemperatureHigh\s+CPU temperature 82\.5°C reached the throttling threshold 75°C", describe);
        Assert.Matches(@"Taints:\s+edgekube.io/thermal-throttling:NoSchedule", describe);
        Assert.Contains("edgekube_node_cpu_temperature_celsius 82.5", await Agent.GetAsync("/metrics"));
        Assert.Contains("edgekube_node_condition{condition=\"ThermalThrottling\",status=\"true\"} 1", await Agent.GetAsync("/metrics"));
        // Degraded: red steady (led1), green off; a steady pattern, so any two looks agree.
        await Eventually.Until(() => Task.FromResult(Led("led0") == "0" && Led("led1") == "1"), TimeSpan.FromSeconds(20), () => "LEDs not red: " + Led("led0") + Led("led1"));

        // A pod without a toleration is not scheduled onto the hot board...
        var pod = Path.Combine(Master.DataDir, "cool.yaml");
        File.WriteAllText(pod, $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: cool}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
              - name: app
                image: "{{Image}}"
                command: [sh, -c, "trap 'exit 0' TERM; test -c /dev/gpiochip0 && echo has-gpiochip; while true; do sleep 1; done"]
                resources:
                  limits: {edgekube.io/gpio: 1}
            """);
        await Master.Kubectl("apply", "-f", pod);
        await Eventually.Until(async () => (await Master.KubectlAsync("describe", "pod", "cool")).Output.Contains("untolerated taint {edgekube.io/thermal-throttling: }"),
            TimeSpan.FromSeconds(30), () => "no FailedScheduling for the taint\n" + AgentProcess.Tail(Master.Log, 20));

        // ...between the thresholds it stays hot; below the clear threshold the taint goes and the pod runs.
        WriteSys("class/thermal/thermal_zone0/temp", "72000");
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal("True", await Jsonpath(Condition("ThermalThrottling")));
        WriteSys("class/thermal/thermal_zone0/temp", "65000");
        await WaitForAsync(Condition("ThermalThrottling"), s => s == "False", "ThermalThrottling never cleared");
        await WaitForAsync("{.spec.taints}", s => !s.Contains("edgekube.io/thermal-throttling", StringComparison.Ordinal), "thermal taint never lifted");
        await Eventually.Until(async () => (await Master.KubectlAsync("get", "pod", "cool", "-o", "jsonpath={.status.phase}")).Output.Trim() == "Running",
            TimeSpan.FromSeconds(90), () => "pod never ran after the board cooled\n" + AgentProcess.Tail(Master.Log, 20) + AgentProcess.Tail(Agent.Log, 20));

        // The pod asked for edgekube.io/gpio and got the device node.
        await Eventually.Until(async () => (await Master.KubectlAsync("logs", "cool")).Output.Contains("has-gpiochip"), TimeSpan.FromSeconds(30),
            () => "no device in the container: " + Master.KubectlAsync("logs", "cool").Result.Output);

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
        await Master.Kubectl("delete", "pod", "cool");
    }
}
