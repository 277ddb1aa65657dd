using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Infra;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 4: MQTT bytes between one node and the broker (a counting TCP proxy between them): per
/// hour idle with 10 pods, and per pod lifecycle (create → Running → delete).
/// </summary>
public static class Bandwidth
{
    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("bandwidth", "Bandwidth between one node and the broker",
            "what", "agent → broker", "broker → agent", "total", "target");
        await using var cluster = await Cluster.StartAsync();
        await cluster.ApplyAsync(Cluster.PodsYaml("bw", 10));
        await cluster.WaitRunningAsync("bw", 10, TimeSpan.FromMinutes(3));
        await Task.Delay(TimeSpan.FromSeconds(15));

        // Idle windows span several lease and status periods (10 s each).
        // The idle traffic is a lease every 150 s and keepalive pings every 15 s: windows of at least two
        // lease periods, so each holds the same mix.
        var window = Math.Max(o.Window, 300);
        var up = new List<double>();
        var down = new List<double>();
        var wire = new List<double>();
        var agentPort = cluster.Proxy.ClientPorts.Single();
        for (var run = 0; run < o.Runs; run++)
        {
            var (u0, d0) = (cluster.Proxy.BytesUp, cluster.Proxy.BytesDown);
            var s0 = await SocketAsync(agentPort);
            var clock = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(window));
            var hours = clock.Elapsed.TotalHours;
            var s1 = await SocketAsync(agentPort);
            up.Add((cluster.Proxy.BytesUp - u0) / hours);
            down.Add((cluster.Proxy.BytesDown - d0) / hours);
            wire.Add((s1.Bytes - s0.Bytes + ((s1.Segments - s0.Segments) * HeaderBytes)) / hours);
        }

        var idleTotal = Summary.Of(up.Zip(down, (a, b) => a + b));
        report.Row("idle, 10 pods: bytes per hour", Kb(Summary.Of(up)), Kb(Summary.Of(down)), Kb(idleTotal), $"≤ 10 KB/h: {Report.Verdict(idleTotal.Median <= 10_000)}");
        report.Row("  the same on the wire (TCP/IPv4 headers of every segment, ACKs included)", "", "", Kb(Summary.Of(wire)), "");
        report.Data["idleBytesPerHour"] = new JsonObject { ["up"] = Summary.Of(up).Json(), ["down"] = Summary.Of(down).Json(), ["total"] = idleTotal.Json(), ["wire"] = Summary.Of(wire).Json() };

        var lifeUp = new List<double>();
        var lifeDown = new List<double>();
        var idleUpPerSec = Summary.Of(up).Median / 3600;
        var idleDownPerSec = Summary.Of(down).Median / 3600;
        for (var run = 0; run < o.Runs; run++)
        {
            var (u0, d0) = (cluster.Proxy.BytesUp, cluster.Proxy.BytesDown);
            var clock = Stopwatch.StartNew();
            await cluster.ApplyAsync(Cluster.PodsYaml($"life{run}", 1));
            await cluster.WaitRunningAsync($"life{run}", 1, TimeSpan.FromMinutes(2));
            await cluster.Master.Kubectl("delete", "pod", $"life{run}-0", "--wait=true");
            await Task.Delay(TimeSpan.FromSeconds(2));
            var seconds = clock.Elapsed.TotalSeconds;
            // The idle traffic of the same span is not the pod's.
            lifeUp.Add(cluster.Proxy.BytesUp - u0 - (idleUpPerSec * seconds));
            lifeDown.Add(cluster.Proxy.BytesDown - d0 - (idleDownPerSec * seconds));
        }

        var lifeTotal = Summary.Of(lifeUp.Zip(lifeDown, (a, b) => a + b));
        report.Row("one pod: create → Running → delete, bytes", Kb(Summary.Of(lifeUp)), Kb(Summary.Of(lifeDown)), Kb(lifeTotal), "");
        report.Data["podLifecycleBytes"] = new JsonObject { ["up"] = Summary.Of(lifeUp).Json(), ["down"] = Summary.Of(lifeDown).Json(), ["total"] = lifeTotal.Json() };
        var node = await cluster.Master.GetAsync("/api/v1/nodes/" + Cluster.Node);
        var pod = (await cluster.Master.GetAsync("/api/v1/namespaces/default/pods"))["items"]![0]!;
        report.Note($"KB = 1000 bytes of MQTT: the TCP payload through the bench's proxy, every MQTT packet counted (PUBLISH, PUBACK, PINGREQ, PINGRESP, ...). Median (min–max) of {o.Runs} windows of {window} s idle, scaled to an hour; and of {o.Runs} pod lifecycles, less the idle rate over the same time.");
        report.Note($"On the wire: bytes and segments of the agent's socket from the kernel (`ss -ti`: bytes_sent + bytes_received + {HeaderBytes} bytes of IPv4 and TCP headers with timestamps per segment in and out); link-layer framing not counted. Each keepalive exchange (PINGREQ, PINGRESP and the delayed ACK) is 4 bytes of MQTT but about {3 * HeaderBytes + 4} bytes on the wire.");
        report.Note($"Sizes for reference: this node's status, as the API holds it, {node["status"]!.ToJsonString().Length} bytes of JSON; one pod's status {pod["status"]!.ToJsonString().Length} bytes.");
        return report;
    }

    /// <summary>IPv4 (20) + TCP (20) + the timestamps option (12): what every segment carries besides its payload.</summary>
    private const int HeaderBytes = 52;

    /// <summary>The byte and segment counts of the agent's socket (local port <paramref name="port"/>), in and out.</summary>
    private static async Task<(long Bytes, long Segments)> SocketAsync(int port)
    {
        var output = await Run.CheckedAsync("ss", "-tinH", "state", "established", $"( sport = :{port} )");
        long Field(string name) => System.Text.RegularExpressions.Regex.Match(output, $@"\b{name}:(\d+)") is { Success: true } m
            ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : throw new InvalidOperationException($"ss shows no {name} for port {port}:\n{output}");
        return (Field("bytes_sent") + Field("bytes_received"), Field("segs_out") + Field("segs_in"));
    }

    private static string Kb(Summary s) => s.Show("0.0") is var t && s.Runs > 0 ? Summary.Of([s.Median / 1000]).Show("0.0") + (s.Min != s.Max ? $" ({(s.Min / 1000).ToString("0.0", CultureInfo.InvariantCulture)}–{(s.Max / 1000).ToString("0.0", CultureInfo.InvariantCulture)})" : "") + " KB" : t;
}
