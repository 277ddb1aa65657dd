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
          - {name: air, type: bme280, bus: 99, address: 0x76, interval: 1s, absentAfter: 2s}
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
        // The air sensor was never there: failing for its absentAfter (2s), it loses its label; the error stays.
        await WaitForAsync("{.metadata.labels}", s => s.Contains("sensors.edgekube.io/cpu", StringComparison.Ordinal) && !s.Contains("sensors.edgekube.io/air", StringComparison.Ordinal), "air label never removed");
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

        // The master's /metrics, through kubectl with the admin token: the readings the node sent, nodes by Ready.
        var metrics = await Master.Kubectl("get", "--raw", "/metrics");
        Assert.Contains($"edgekube_node_sensor_value{{node=\"{Node}\",sensor=\"probe\",type=\"ds18b20\",quantity=\"temperature\",unit=\"°C\"}} 21.5\n", metrics);
        Assert.Contains($"edgekube_node_sensor_up{{node=\"{Node}\",sensor=\"air\",type=\"bme280\"}} 0\n", metrics);
        Assert.Contains("edgekube_nodes{ready=\"true\"} 1\n", metrics);
        Assert.Contains($"edgekube_node_status_condition{{node=\"{Node}\",condition=\"ThermalThrottling\",status=\"false\"}} 1\n", metrics);
        Assert.Contains("edgekube_master_broker_connected 1\n", metrics);
        // Without the token, as kube-apiserver: 401.
        var (_, anonymous) = await MasterProcess.RunAsync("curl", ["-sk", "-o", "/dev/null", "-w", "%{http_code}", $"https://127.0.0.1:{Master.ApiPort}/metrics"]);
        Assert.Equal("401", anonymous.Trim());
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

        Assert.Contains("edgekube_pods{phase=\"Running\"} 1\n", await Master.Kubectl("get", "--raw", "/metrics"));

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

    /// <summary>Samples the two board LEDs every few milliseconds for <paramref name="span"/>: the states seen, in order, without repeats.</summary>
    private async Task<List<string>> WatchLedsAsync(TimeSpan span)
    {
        var states = new List<string>();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (watch.Elapsed < span)
        {
            var state = Led("led0") + Led("led1");
            // A read between the truncation and the write of a brightness file sees it empty: skip it.
            if (state.Length == 2 && (states.Count == 0 || states[^1] != state))
            {
                states.Add(state);
            }

            await Task.Delay(5);
        }

        return states;
    }

    /// <summary>Identify on the board LEDs: both on together, then both off together, again and again (2 Hz).</summary>
    private async Task WaitForFlashingAsync(string what)
    {
        List<string> seen = [];
        await Eventually.Until(async () =>
        {
            seen = await WatchLedsAsync(TimeSpan.FromSeconds(2));
            // On and off together at least three times in two seconds; green steady shows only "10".
            return Enumerable.Range(1, seen.Count - 1).Count(i => seen[i - 1] == "11" && seen[i] == "00") >= 3;
        }, TimeSpan.FromSeconds(30), () => $"{what}: LEDs not flashing together, saw {string.Join(' ', seen)}" + Diagnostics);
    }

    /// <summary>Green steady (Running) for a whole second: no identify.</summary>
    private async Task WaitForSteadyGreenAsync(string what)
    {
        List<string> seen = [];
        await Eventually.Until(async () =>
        {
            seen = await WatchLedsAsync(TimeSpan.FromSeconds(1));
            return seen.SequenceEqual(["10"]);
        }, TimeSpan.FromSeconds(30), () => $"{what}: LEDs not steady green, saw {string.Join(' ', seen)}" + Diagnostics);
    }

    [Fact]
    public async Task Identify_by_annotation_or_command_flashes_the_boards_leds_for_its_time()
    {
        await WaitForNodeReadyAsync();
        await WaitForSteadyGreenAsync("before identify");

        // kubectl annotate: the master stamps the end and the board flashes.
        await Master.Kubectl("annotate", "node", Node, "edgekube.io/identify=30s");
        await WaitForFlashingAsync("identify=30s");
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", await Jsonpath("{.metadata.annotations.edgekube\\.io/identify-until}"));
        Assert.Contains("Flashing the node's LEDs for 30s", await Master.Kubectl("describe", "node", Node));

        // A new value restarts it for the new time; at its end the master removes both annotations and the board is green again.
        await Master.Kubectl("annotate", "--overwrite", "node", Node, "edgekube.io/identify=4s");
        await WaitForFlashingAsync("identify=4s");
        await WaitForAsync("{.metadata.annotations}", s => !s.Contains("edgekube.io/identify", StringComparison.Ordinal), "identify annotations not removed at the end");
        await WaitForSteadyGreenAsync("after identify=4s ended");

        // A bad value: a warning event, no flashing, nothing falls over.
        await Master.Kubectl("annotate", "node", Node, "edgekube.io/identify=banana");
        await Eventually.Until(async () => (await Master.KubectlAsync("describe", "node", Node)).Output.Contains("InvalidIdentify", StringComparison.Ordinal),
            TimeSpan.FromSeconds(20), () => "no InvalidIdentify event" + Diagnostics);
        Assert.Matches(@"Warning\s+InvalidIdentify\s+.*edgekube.io/identify: ""banana"" is not a duration", await Master.Kubectl("describe", "node", Node));
        await WaitForSteadyGreenAsync("identify=banana");

        // A long one, stopped by removing the annotation.
        await Master.Kubectl("annotate", "--overwrite", "node", Node, "edgekube.io/identify=10m");
        await WaitForFlashingAsync("identify=10m");
        await Master.Kubectl("annotate", "node", Node, "edgekube.io/identify-");
        await WaitForSteadyGreenAsync("identify annotation removed");
        await WaitForAsync("{.metadata.annotations}", s => !s.Contains("edgekube.io/identify-until", StringComparison.Ordinal), "end stamp not removed");

        // The master's command does the same through the API; --stop ends it.
        var (code, output) = await Master.CliAsync("node", "identify", Node, "--for", "2m");
        Assert.True(code == 0, output);
        Assert.Contains($"node {Node}: LEDs flash for 2m", output);
        await WaitForFlashingAsync("node identify --for 2m");
        (code, output) = await Master.CliAsync("node", "identify", Node, "--stop");
        Assert.True(code == 0, output);
        await WaitForSteadyGreenAsync("node identify --stop");
        (code, output) = await Master.CliAsync("node", "identify", "no-such-node");
        Assert.Equal((1, true), (code, output.Contains("node \"no-such-node\" not found", StringComparison.Ordinal)));
        (code, output) = await Master.CliAsync("node", "identify", Node, "--for", "soon");
        Assert.Equal((2, true), (code, output.Contains("invalid setting --for: \"soon\"", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_sensor_taken_out_of_the_config_loses_its_label_and_annotations_and_what_people_set_stays()
    {
        await WaitForAsync("{.metadata.annotations.edgekube\\.io/probe\\.temperature}", s => s == "21.5 °C", "no probe annotation");
        Assert.Equal("ds18b20", await Jsonpath("{.metadata.labels.sensors\\.edgekube\\.io/probe}"));
        await Master.Kubectl("label", "node", Node, "site=lab");
        await Master.Kubectl("annotate", "node", Node, "owner=ops");

        // Every version of the node from here on: the cpu reading must never blink out while the agent restarts.
        await using var watch = Master.KubectlStream("get", "node", Node, "-w", "-o", "jsonpath={.metadata.resourceVersion} cpu={.metadata.annotations.edgekube\\.io/cpu\\.temperature} probe={.metadata.labels.sensors\\.edgekube\\.io/probe}{\"\\n\"}");
        await Eventually.Until(() => Task.FromResult(watch.Output.Contains("cpu=45 °C probe=ds18b20", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => "no watch output: " + watch.Output);

        // The probe is taken out of the board's config; the agent restarts with it.
        await Agent.StopAsync();
        var config = JoinConfig + ExtraConfig.Replace("- {name: probe, type: ds18b20, interval: 200ms, delta: 0.5}", string.Empty, StringComparison.Ordinal);
        Assert.DoesNotContain("probe", config);
        File.WriteAllText(Path.Combine(Agent.WorkDir, "agent.yaml"), config);
        await Agent.StartAsync();

        await WaitForAsync("{.metadata}", s => !s.Contains("probe", StringComparison.Ordinal), "the probe's label and annotations stayed");
        Assert.Equal("lab", await Jsonpath("{.metadata.labels.site}"));
        Assert.Equal("ops", await Jsonpath("{.metadata.annotations.owner}"));
        Assert.Equal("cpu-temperature", await Jsonpath("{.metadata.labels.sensors\\.edgekube\\.io/cpu}"));
        Assert.Equal("45 °C", await Jsonpath("{.metadata.annotations.edgekube\\.io/cpu\\.temperature}"));
        Assert.DoesNotContain("sensor=\"probe\"", await Master.Kubectl("get", "--raw", "/metrics"));
        await Eventually.Until(() => Task.FromResult(watch.Output.Contains("probe=\n", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), () => "the watch did not see the probe go: " + watch.Output);
        // The agent's first report after its start waited for a first read of every sensor.
        Assert.DoesNotContain("cpu= ", watch.Output);
    }
}
