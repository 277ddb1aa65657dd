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
        var window = Math.Max(o.Window, 60);
        var up = new List<double>();
        var down = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var (u0, d0) = (cluster.Proxy.BytesUp, cluster.Proxy.BytesDown);
            var clock = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(window));
            var hours = clock.Elapsed.TotalHours;
            up.Add((cluster.Proxy.BytesUp - u0) / hours);
            down.Add((cluster.Proxy.BytesDown - d0) / hours);
        }

        var idleTotal = Summary.Of(up.Zip(down, (a, b) => a + b));
        report.Row("idle, 10 pods: bytes per hour", Kb(Summary.Of(up)), Kb(Summary.Of(down)), Kb(idleTotal), $"≤ 10 KB/h: {Report.Verdict(idleTotal.Median <= 10_000)}");
        report.Data["idleBytesPerHour"] = new JsonObject { ["up"] = Summary.Of(up).Json(), ["down"] = Summary.Of(down).Json(), ["total"] = idleTotal.Json() };

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
        report.Note($"KB = 1000 bytes of MQTT (TCP payload through the bench's proxy; TCP/IP headers not counted). Median (min–max) of {o.Runs} windows of {window} s idle, scaled to an hour; and of {o.Runs} pod lifecycles, less the idle rate over the same time.");
        return report;
    }

    private static string Kb(Summary s) => s.Show("0.0") is var t && s.Runs > 0 ? Summary.Of([s.Median / 1000]).Show("0.0") + (s.Min != s.Max ? $" ({(s.Min / 1000).ToString("0.0", CultureInfo.InvariantCulture)}–{(s.Max / 1000).ToString("0.0", CultureInfo.InvariantCulture)})" : "") + " KB" : t;
}
