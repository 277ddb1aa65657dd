using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Infra;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 3: how long until the API shows a failure: a container that exits (terminated state),
/// the agent killed with SIGKILL (node NotReady), the agent's network cut silently (node NotReady).
/// </summary>
public static class Failure
{
    private const int KeepAlive = 15;

    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("failure", "Failure detection: event → visible through the API",
            "event", "seconds", "target");
        // The grace period is long, so NotReady comes from the broker's will (presence), not the lease timeout.
        await using var cluster = await Cluster.StartAsync(gracePeriodSeconds: 40, keepAliveSeconds: KeepAlive);

        var exit = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var name = $"exit{run}-0";
            await cluster.ApplyAsync(Cluster.PodsYaml("exit" + run, 1, restartPolicy: "Never"));
            await cluster.WaitRunningAsync("exit" + run, 1, TimeSpan.FromMinutes(2));
            var pod = await cluster.Master.GetAsync($"/api/v1/namespaces/default/pods/{name}");
            var id = pod["status"]!["containerStatuses"]![0]!["containerID"]!.GetValue<string>().Split("://")[1];
            var took = await cluster.Master.TimeUntilWatchShowsAsync("/api/v1/namespaces/default/pods",
                p => p["metadata"]?["name"]?.GetValue<string>() == name && p["status"]?["containerStatuses"]?[0]?["state"]?["terminated"] is JsonObject,
                () => Run.CheckedAsync("ctr", "--address", cluster.Containerd.SocketPath, "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id),
                TimeSpan.FromMinutes(1));
            exit.Add(took.TotalSeconds);
            await cluster.DeleteAllPodsAsync(TimeSpan.FromMinutes(2));
        }

        var kill = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var took = await NodeReadyAsync(cluster, false, cluster.Agent.KillAsync, TimeSpan.FromMinutes(2));
            kill.Add(took.TotalSeconds);
            cluster.RestartAgent();
            await cluster.WaitNodeReadyAsync(true, TimeSpan.FromMinutes(2));
        }

        var cut = new List<double>();
        var sinceLast = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var before = TimeSpan.Zero;
            var took = await NodeReadyAsync(cluster, false, () =>
            {
                cluster.Proxy.Cut();
                // The broker's keepalive counts from the last packet it received, which may precede the cut.
                before = DateTime.UtcNow - cluster.Proxy.LastUp;
                return Task.CompletedTask;
            }, TimeSpan.FromMinutes(3));
            cut.Add(took.TotalSeconds);
            sinceLast.Add((before + took).TotalSeconds);
            cluster.Proxy.DropAll();
            cluster.Proxy.Restore();
            await cluster.WaitNodeReadyAsync(true, TimeSpan.FromMinutes(3));
        }

        Add(report, "container exits (SIGKILL to its process) → terminated state in the API", exit, 1.5);
        Add(report, "agent SIGKILL → node NotReady", kill, 5);
        Add(report, $"network cut (silent, keepalive {KeepAlive} s) → node NotReady", cut, KeepAlive * 1.5);
        var last = Summary.Of(sinceLast);
        report.Row($"  the same, from the agent's last packet before the cut", last.Show("0.00"), $"MQTT's bound: {KeepAlive * 1.5:0.0} s + the will's way to the API");
        report.Data["network cut, from the last packet"] = last.Json();
        report.Note($"Median (min–max) of {o.Runs} runs. Times from the event to the watch event on the API that shows it (the watch is listed before the event, so no polling interval is in the figure).");
        report.Note("The container is killed with `ctr tasks kill --signal SIGKILL` on the bench's containerd. The network cut is the bench's TCP proxy between agent and broker swallowing all bytes without closing anything, so only the broker's keepalive (1.5 × keepalive, MQTT) can notice; the node's will message (presence offline) then turns the node NotReady. The master's --node-monitor-grace-period is 40 s, so the lease timeout plays no part.");
        return report;
    }

    private static Task<TimeSpan> NodeReadyAsync(Cluster cluster, bool ready, Func<Task> act, TimeSpan timeout) =>
        cluster.Master.TimeUntilWatchShowsAsync("/api/v1/nodes", n => n["metadata"]?["name"]?.GetValue<string>() == Cluster.Node && Cluster.Ready(n) == ready, act, timeout);

    private static void Add(Report report, string what, List<double> seconds, double target)
    {
        var s = Summary.Of(seconds);
        report.Row(what, s.Show("0.00"), $"≤ {target.ToString("0.0", CultureInfo.InvariantCulture)} s: {Report.Verdict(s.Median <= target)}");
        report.Data[what] = s.Json();
    }
}
