using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Hollow;
using EdgeKube.Bench.Infra;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 5: one master and its embedded broker against hollow nodes (real agent code, in-memory
/// runtime, all in the bench process), 10 pods per node: master memory and CPU, scheduling
/// throughput, time until all pods are Running, <c>kubectl get pods -A</c> latency, time to notice
/// 10 % of the nodes lost.
/// </summary>
public static class Scale
{
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("scale", "Master scale with hollow nodes (one master, embedded broker)",
            "nodes", "pods", "nodes Ready after s", "pods created in s", "scheduling pods/s", "all Running after s", "master RSS MiB (peak)", "master CPU s during ramp",
            "master idle % of a core", "kubectl get pods -A s", "10% nodes lost → NotReady s");
        foreach (var n in o.Nodes)
        {
            await RunOneAsync(o, report, n);
        }

        report.Note("Hollow nodes: the real agent (EdgeKube.Agent's Agent: MQTT link, pod source, pod workers, status manager, node reporter) over the unit tests' in-memory runtime, all in the bench process, like kubemark. The master is its own process with its embedded broker; both share this machine's cores with the hollow nodes.");
        report.Note($"Pods are created through the API ({HollowCluster.CreateParallelism} requests in flight{(o.CreateRate > 0 ? $", at most {o.CreateRate:0.#} a second" : string.Empty)}) without a node; 'scheduling pods/s' is pods / (last pod bound − first create). 'all Running' is from the first create until a watch on the API has shown every pod Running.");
        report.Note($"'10% nodes lost': the first 10% of the nodes reach the broker through a proxy that then swallows all traffic silently (a network cut); the broker notices after 1.5 × keepalive ({KeepAlive.TotalSeconds} s), publishes the will, and the master marks the node NotReady. Time until a watch on the API has shown all of them NotReady.");
        report.Note($"kubectl get pods -A: median (min–max) of {o.Runs} runs, wall time of the whole kubectl process.");
        return report;
    }

    private static async Task RunOneAsync(BenchOptions o, Report report, int nodes)
    {
        Console.Error.WriteLine($"bench scale: {nodes} nodes");
        var lost = Math.Max(1, nodes / 10);
        var pods = nodes * o.PodsPerNode;
        await using var cluster = await HollowCluster.StartAsync(nodes, lost, KeepAlive);
        var register = await HollowCluster.TimeAsync(async () =>
        {
            await cluster.Fleet.StartAsync();
            await cluster.WaitNodesReadyAsync(nodes, TimeSpan.FromMinutes(10 + (nodes / 500)));
        });
        Console.Error.WriteLine($"bench scale: {nodes} nodes Ready after {register:0.0} s");

        var cpu0 = cluster.Master.Sample();
        var t0 = DateTime.UtcNow;
        using var progress = new CancellationTokenSource();
        var reporting = ReportProgressAsync(cluster, t0, progress.Token);
        double create;
        try
        {
            create = await HollowCluster.TimeAsync(() => cluster.CreatePodsAsync(pods, o.CreateRate));
            Console.Error.WriteLine($"bench scale: {pods} pods created in {create:0.0} s");
            await cluster.WaitAllRunningAsync(pods, TimeSpan.FromMinutes(30));
        }
        finally
        {
            await progress.CancelAsync();
            await reporting;
            PrintWarnings(cluster, "until all pods Running");
        }

        var warnings = cluster.Fleet.Warnings.Counts();
        var cpu1 = cluster.Master.Sample();
        var lastBound = cluster.BoundAt.Values.Max();
        var lastRunning = cluster.RunningAt.Values.Max();
        var throughput = pods / (lastBound - t0).TotalSeconds;
        var allRunning = (lastRunning - t0).TotalSeconds;
        Console.Error.WriteLine($"bench scale: all Running after {allRunning:0.0} s");

        await Task.Delay(TimeSpan.FromSeconds(10));
        var idle = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var a = cluster.Master.Sample();
            await Task.Delay(TimeSpan.FromSeconds(o.Window));
            var b = cluster.Master.Sample();
            idle.Add(b.PercentOfCoreSince(a));
        }

        var get = new List<double>();
        for (var run = 0; run < o.Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            var output = await cluster.Master.Kubectl("get", "pods", "-A");
            get.Add(clock.Elapsed.TotalSeconds);
            if (output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length < pods + 1)
            {
                throw new InvalidOperationException($"kubectl get pods -A listed fewer than {pods} pods");
            }
        }

        var mem = cluster.Master.Sample();
        var lostNames = cluster.Fleet.Nodes.Take(lost).Select(h => h.Name).ToHashSet(StringComparer.Ordinal);
        var lossClock = Stopwatch.StartNew();
        cluster.Proxy!.Cut();
        await cluster.WaitNotReadyAsync(lostNames, TimeSpan.FromMinutes(5));
        var loss = lossClock.Elapsed.TotalSeconds;
        cluster.Proxy.DropAll();

        var idleS = Summary.Of(idle);
        var getS = Summary.Of(get);
        report.Row(nodes.ToString(CultureInfo.InvariantCulture), pods.ToString(CultureInfo.InvariantCulture), register.ToString("0.0", CultureInfo.InvariantCulture),
            create.ToString("0.0", CultureInfo.InvariantCulture), throughput.ToString("0", CultureInfo.InvariantCulture), allRunning.ToString("0.0", CultureInfo.InvariantCulture),
            $"{Report.Mb(mem.RssBytes)} ({Report.Mb(mem.PeakRssBytes)})", (cpu1.CpuSeconds - cpu0.CpuSeconds).ToString("0.0", CultureInfo.InvariantCulture),
            idleS.Show("0.0"), getS.Show("0.00"), loss.ToString("0.0", CultureInfo.InvariantCulture));
        report.Data[$"nodes{nodes}"] = new JsonObject
        {
            ["pods"] = pods,
            ["createRatePodsPerSecond"] = o.CreateRate,
            ["nodesReadySeconds"] = register,
            ["createSeconds"] = create,
            ["schedulingPodsPerSecond"] = throughput,
            ["allRunningSeconds"] = allRunning,
            ["masterRssBytes"] = mem.RssBytes,
            ["masterPeakRssBytes"] = mem.PeakRssBytes,
            ["masterCpuSecondsRamp"] = cpu1.CpuSeconds - cpu0.CpuSeconds,
            ["masterIdlePercentOfCore"] = idleS.Json(),
            ["kubectlGetPodsSeconds"] = getS.Json(),
            ["lostNodes"] = lost,
            ["lostNotReadySeconds"] = loss,
            ["hollowWarningsUntilRunning"] = new JsonObject([.. warnings.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))]),
        };
    }

    /// <summary>
    /// Every minute until all pods run: pods bound and Running, nodes not Ready, and the hollow nodes' warnings so
    /// far, so that a run which falls behind says where, even if it never ends.
    /// </summary>
    private static async Task ReportProgressAsync(HollowCluster cluster, DateTime t0, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(60), stop);
                var notReady = cluster.NodeReady.Count(n => !n.Value);
                var warnings = cluster.Fleet.Warnings.Summary();
                Console.Error.WriteLine($"bench scale: {(DateTime.UtcNow - t0).TotalSeconds:0} s: {cluster.BoundAt.Count} pods bound, {cluster.RunningAt.Count} Running, {notReady} nodes not Ready; warnings: {(warnings.Count == 0 ? "none" : string.Join("; ", warnings))}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void PrintWarnings(HollowCluster cluster, string when)
    {
        var lines = cluster.Fleet.Warnings.Summary();
        Console.Error.WriteLine($"bench scale: hollow nodes' warnings and errors {when}: {(lines.Count == 0 ? "none" : string.Empty)}");
        foreach (var line in lines)
        {
            Console.Error.WriteLine($"  {line}");
        }
    }
}
