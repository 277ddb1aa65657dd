using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Hollow;
using EdgeKube.Bench.Infra;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 6: a reconnect storm. 1,000 hollow nodes (10 pods each) reach the broker through one
/// proxy, which resets every connection at once; the nodes reconnect. Time until all are back in
/// sync, bytes it took, and whether any pod was recreated.
/// </summary>
public static class Storm
{
    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var nodes = o.Nodes.Contains(1000) ? 1000 : o.Nodes.Max();
        var pods = nodes * o.PodsPerNode;
        var report = new Report("storm", $"Reconnect storm: {nodes} hollow nodes, {pods} pods, every connection reset at once",
            "run", "all reconnected s", "full resync s", "bytes agent → broker", "bytes broker → agent", "bytes per node", "pods recreated", "sandboxes recreated");
        await using var cluster = await HollowCluster.StartAsync(nodes, nodes, TimeSpan.FromSeconds(15));
        await cluster.Fleet.StartAsync();
        await cluster.WaitNodesReadyAsync(nodes, TimeSpan.FromMinutes(15));
        await cluster.CreatePodsAsync(pods);
        await cluster.WaitAllRunningAsync(pods, TimeSpan.FromMinutes(30));
        await Task.Delay(TimeSpan.FromSeconds(15));
        var proxy = cluster.Proxy!;

        // The idle rate, to know when the storm is over.
        var idleBytes = proxy.Bytes;
        await Task.Delay(TimeSpan.FromSeconds(10));
        var idlePerSecond = (proxy.Bytes - idleBytes) / 10.0;

        var reconnected = new List<double>();
        var resynced = new List<double>();
        var totalRecreatedPods = 0;
        var totalRecreatedSandboxes = 0;
        for (var run = 0; run < o.Runs; run++)
        {
            var uids = await PodUidsAsync(cluster.Master);
            var sandboxes = cluster.Fleet.Nodes.Select(n => n.SandboxIds()).ToList();
            var (up0, down0) = (proxy.BytesUp, proxy.BytesDown);
            var clock = Stopwatch.StartNew();
            proxy.DropAll();

            await Run.UntilAsync(() => Task.FromResult(proxy.Connections >= nodes), TimeSpan.FromMinutes(10), "every node to reconnect", 50);
            var back = clock.Elapsed.TotalSeconds;

            // In sync: every node Ready in the API, every pod Running there, and the traffic back to its idle rate for 3 s.
            var quietSince = TimeSpan.Zero;
            var last = proxy.Bytes;
            var done = TimeSpan.Zero;
            var progress = Stopwatch.StartNew();
            var rate = 0L;
            while (clock.Elapsed < TimeSpan.FromMinutes(15))
            {
                await Task.Delay(1000);
                var now = proxy.Bytes;
                rate = now - last;
                var quiet = rate <= Math.Max(2 * idlePerSecond, 2000);
                last = now;
                if (progress.Elapsed >= TimeSpan.FromSeconds(30))
                {
                    progress.Restart();
                    var (ready, running) = await StateAsync(cluster);
                    Console.Error.WriteLine($"bench storm: {clock.Elapsed.TotalSeconds:0} s after the reset: {proxy.Connections} connections, {ready}/{nodes} nodes Ready, {running}/{pods} pods Running, {rate} B/s");
                }

                if (!quiet)
                {
                    quietSince = TimeSpan.Zero;
                    continue;
                }

                if (quietSince == TimeSpan.Zero)
                {
                    quietSince = clock.Elapsed - TimeSpan.FromSeconds(1);
                }

                if (clock.Elapsed - quietSince >= TimeSpan.FromSeconds(3)
                    && (await cluster.ReadyNodesAsync()).Count >= nodes
                    && (await PodUidsAsync(cluster.Master)).Count(p => p.Value.Running) >= pods)
                {
                    done = quietSince;
                    break;
                }
            }

            if (done == TimeSpan.Zero)
            {
                var (ready, running) = await StateAsync(cluster);
                throw new TimeoutException($"the cluster did not settle within 15 minutes of the storm: {ready}/{nodes} nodes Ready, {running}/{pods} pods Running, {rate} B/s (idle before: {idlePerSecond:0} B/s)");
            }

            var (up, down) = (proxy.BytesUp - up0, proxy.BytesDown - down0);
            var after = await PodUidsAsync(cluster.Master);
            var recreatedPods = uids.Count(u => !after.TryGetValue(u.Key, out var a) || a.Uid != u.Value.Uid || a.Restarts != u.Value.Restarts);
            var recreatedSandboxes = cluster.Fleet.Nodes.Select((n, i) => n.SandboxIds().SetEquals(sandboxes[i]) ? 0 : 1).Sum();
            Console.Error.WriteLine($"bench storm: run {run + 1}: all reconnected after {back:0.0} s, resynced after {done.TotalSeconds:0.0} s, {up} B up, {down} B down, {recreatedPods} pods and {recreatedSandboxes} nodes' sandboxes recreated");
            totalRecreatedPods += recreatedPods;
            totalRecreatedSandboxes += recreatedSandboxes;
            reconnected.Add(back);
            resynced.Add(done.TotalSeconds);
            report.Row((run + 1).ToString(CultureInfo.InvariantCulture), back.ToString("0.0", CultureInfo.InvariantCulture), done.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                Kb(up), Kb(down), Kb((up + down) / (double)nodes), recreatedPods.ToString(CultureInfo.InvariantCulture), recreatedSandboxes.ToString(CultureInfo.InvariantCulture));
            report.Data[$"run{run + 1}"] = new JsonObject
            {
                ["reconnectedSeconds"] = back, ["resyncSeconds"] = done.TotalSeconds, ["bytesUp"] = up, ["bytesDown"] = down,
                ["recreatedPods"] = recreatedPods, ["nodesWithChangedSandboxes"] = recreatedSandboxes,
            };
            await Task.Delay(TimeSpan.FromSeconds(10));
        }

        report.Row("median", Summary.Of(reconnected).Show("0.0"), Summary.Of(resynced).Show("0.0"), "", "", "", totalRecreatedPods == 0 ? "0 (none in any run)" : $"**{totalRecreatedPods}**",
            totalRecreatedSandboxes == 0 ? "0" : $"**{totalRecreatedSandboxes}**");
        report.Note("The proxy resets (RST) every node's connection at once; the nodes reconnect with their own backoff (0.5 s × 2^n, jittered). 'all reconnected': every node has a connection through the proxy again. 'full resync': from the reset until the traffic is back to its idle rate for 3 s with every node Ready and every pod Running in the API (the start of that quiet time).");
        report.Note("'pods recreated': pods whose UID or restart count in the API changed; 'sandboxes recreated': nodes whose in-memory runtime holds a different set of sandboxes afterwards.");
        report.Note($"Bytes are MQTT (TCP payload) through the proxy from the reset until the resync; idle traffic of all nodes was {idlePerSecond / 1000:0.0} KB/s before.");
        return report;
    }

    private static async Task<(int Ready, int Running)> StateAsync(HollowCluster cluster) =>
        ((await cluster.ReadyNodesAsync()).Count, (await PodUidsAsync(cluster.Master)).Count(p => p.Value.Running));

    private static string Kb(double bytes) => (bytes / 1000).ToString("0.0", CultureInfo.InvariantCulture) + " KB";

    private static async Task<Dictionary<string, (string Uid, long Restarts, bool Running)>> PodUidsAsync(MasterProc master)
    {
        var list = await master.GetAsync("/api/v1/pods");
        return list["items"]!.AsArray().Select(p => p!.AsObject()).ToDictionary(
            p => p["metadata"]!["name"]!.GetValue<string>(),
            p => (p["metadata"]!["uid"]!.GetValue<string>(),
                  p["status"]?["containerStatuses"] is JsonArray cs ? cs.Sum(c => c?["restartCount"]?.GetValue<long>() ?? 0) : 0,
                  Infra.Cluster.Phase(p) == "Running"),
            StringComparer.Ordinal);
    }
}
