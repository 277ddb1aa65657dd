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
            "nodes", "pods", "nodes Ready after s", "pods created in s", "scheduling pods/s", "all Running after s", "master RSS MiB", "master peak RSS MiB", "master CPU s during ramp",
            "master idle % of a core", "kubectl get pods -A s", "10% nodes lost → NotReady s");
        foreach (var n in o.Nodes)
        {
            var runs = new List<Figures>();
            for (var run = 1; run <= o.Runs; run++)
            {
                Console.Error.WriteLine($"bench scale: {n} nodes, run {run} of {o.Runs}");
                runs.Add(await RunOneAsync(o, n));
            }

            AddRow(report, n, n * o.PodsPerNode, runs);
        }

        report.Note($"Median (min–max) of {o.Runs} runs per size; each run is a fresh master and fresh hollow nodes, from the first connection to the lost nodes.");
        report.Note("Hollow nodes: the real agent (EdgeKube.Agent's Agent: MQTT link, pod source, pod workers, status manager, node reporter) over the unit tests' in-memory runtime, all in the bench process, like kubemark. The master is its own process with its embedded broker; both share this machine's cores with the hollow nodes.");
        report.Note($"Pods are created through the API ({HollowCluster.CreateParallelism} requests in flight{(o.CreateRate > 0 ? $", at most {o.CreateRate:0.#} a second" : string.Empty)}) without a node; 'scheduling pods/s' is pods / (last pod bound − first create). 'all Running' is from the first create until a watch on the API has shown every pod Running.");
        report.Note($"Master RSS once all pods run and kubectl get pods -A has listed them; peak RSS is the process's VmHWM. Idle CPU over {o.Window} s, 10 s after all pods run. kubectl get pods -A is the wall time of the whole kubectl process.");
        report.Note($"'10% nodes lost': the first 10% of the nodes reach the broker through a proxy that then swallows all traffic silently (a network cut); the broker notices after 1.5 × keepalive ({KeepAlive.TotalSeconds} s), publishes the will, and the master marks the node NotReady. Time until a watch on the API has shown all of them NotReady.");
        return report;
    }

    /// <summary>How many of <paramref name="nodes"/> the run cuts off: the first 10 %.</summary>
    private static int LostNodes(int nodes) => Math.Max(1, nodes / 10);

    /// <summary>One run's figures at one size.</summary>
    private sealed record Figures(
        double NodesReady, double Create, double PodsPerSecond, double AllRunning, long Rss, long PeakRss, double RampCpu,
        double IdlePercent, double GetPods, double LostNotReady, IReadOnlyDictionary<string, long> Warnings);

    private static void AddRow(Report report, int nodes, int pods, List<Figures> runs)
    {
        Summary Of(Func<Figures, double> figure) => Summary.Of(runs.Select(figure));
        var (ready, create, rate, running, rss, peak, cpu, idle, get, lost) = (
            Of(r => r.NodesReady), Of(r => r.Create), Of(r => r.PodsPerSecond), Of(r => r.AllRunning), Of(r => r.Rss / 1048576.0),
            Of(r => r.PeakRss / 1048576.0), Of(r => r.RampCpu), Of(r => r.IdlePercent), Of(r => r.GetPods), Of(r => r.LostNotReady));
        report.Row(nodes.ToString(CultureInfo.InvariantCulture), pods.ToString(CultureInfo.InvariantCulture), ready.Show("0.0"), create.Show("0.0"), rate.Show("0"),
            running.Show("0.0"), rss.Show("0.0"), peak.Show("0.0"), cpu.Show("0.0"), idle.Show("0.0"), get.Show("0.00"), lost.Show("0.0"));
        report.Data[$"nodes{nodes}"] = new JsonObject
        {
            ["pods"] = pods,
            ["runs"] = runs.Count,
            ["nodesReadySeconds"] = ready.Json(),
            ["createSeconds"] = create.Json(),
            ["schedulingPodsPerSecond"] = rate.Json(),
            ["allRunningSeconds"] = running.Json(),
            ["masterRssMiB"] = rss.Json(),
            ["masterPeakRssMiB"] = peak.Json(),
            ["masterCpuSecondsRamp"] = cpu.Json(),
            ["masterIdlePercentOfCore"] = idle.Json(),
            ["kubectlGetPodsSeconds"] = get.Json(),
            ["lostNodes"] = LostNodes(nodes),
            ["lostNotReadySeconds"] = lost.Json(),
            ["hollowWarningsUntilRunning"] = new JsonArray([.. runs.Select(r => (JsonNode)new JsonObject([.. r.Warnings.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))]))]),
        };
    }

    private static async Task<Figures> RunOneAsync(BenchOptions o, int nodes)
    {
        var lost = LostNodes(nodes);
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
        var throughput = pods / (cluster.BoundAt.Values.Max() - t0).TotalSeconds;
        var allRunning = (cluster.RunningAt.Values.Max() - t0).TotalSeconds;
        Console.Error.WriteLine($"bench scale: all Running after {allRunning:0.0} s");

        await Task.Delay(TimeSpan.FromSeconds(10));
        var a = cluster.Master.Sample();
        await Task.Delay(TimeSpan.FromSeconds(o.Window));
        var idle = cluster.Master.Sample().PercentOfCoreSince(a);

        var clock = Stopwatch.StartNew();
        var output = await cluster.Master.Kubectl("get", "pods", "-A");
        var get = clock.Elapsed.TotalSeconds;
        if (output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length < pods + 1)
        {
            throw new InvalidOperationException($"kubectl get pods -A listed fewer than {pods} pods");
        }

        var mem = cluster.Master.Sample();
        var lostNames = cluster.Fleet.Nodes.Take(lost).Select(h => h.Name).ToHashSet(StringComparer.Ordinal);
        var lossClock = Stopwatch.StartNew();
        cluster.Proxy!.Cut();
        await cluster.WaitNotReadyAsync(lostNames, TimeSpan.FromMinutes(5));
        var loss = lossClock.Elapsed.TotalSeconds;
        cluster.Proxy.DropAll();
        Console.Error.WriteLine($"bench scale: {lost} lost nodes NotReady after {loss:0.0} s");
        return new Figures(register, create, throughput, allRunning, mem.RssBytes, mem.PeakRssBytes, cpu1.CpuSeconds - cpu0.CpuSeconds, idle, get, loss, warnings);
    }

    /// <summary>
    /// Every minute until all pods run: pods bound and Running, nodes not Ready, and the hollow nodes' warnings so
    /// far, so that a run which falls behind says where, even if it never ends.
    /// </summary>
    private static async Task ReportProgressAsync(HollowCluster cluster, DateTime t0, CancellationToken stop)
    {
        try
        {
            // Where a run falls behind: the bench process's own GC and thread pool (it holds every hollow node),
            // and the slowest answer the master gave to one small request a second.
            using var stalls = new StallWatch();
            var (pause, gen2, since) = (GC.GetTotalPauseDuration(), GC.CollectionCount(2), Stopwatch.StartNew());
            var slowest = TimeSpan.Zero;
            for (var tick = 1; ; tick++)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stop);
                var probe = Stopwatch.StartNew();
                try
                {
                    await cluster.Master.GetAsync("/version").WaitAsync(TimeSpan.FromSeconds(60), stop);
                }
                catch (Exception e) when (e is HttpRequestException or InvalidOperationException or TimeoutException)
                {
                }

                slowest = probe.Elapsed > slowest ? probe.Elapsed : slowest;
                if (tick % 60 != 0)
                {
                    continue;
                }

                var notReady = cluster.NodeReady.Count(n => !n.Value);
                var warnings = cluster.Fleet.Warnings.Summary();
                var (pauseNow, gen2Now) = (GC.GetTotalPauseDuration(), GC.CollectionCount(2));
                Console.Error.WriteLine($"bench scale: {(DateTime.UtcNow - t0).TotalSeconds:0} s: {cluster.BoundAt.Count} pods bound, {cluster.RunningAt.Count} Running, {notReady} nodes not Ready; "
                    + $"in the last {since.Elapsed.TotalSeconds:0} s the bench's GC paused {(pauseNow - pause).TotalSeconds:0.0} s ({gen2Now - gen2} gen2) and the bench stood still for {stalls.TakeLongest().TotalSeconds:0.00} s at most, "
                    + $"the master's slowest GET /version took {slowest.TotalMilliseconds:0} ms; {ThreadPool.PendingWorkItemCount} work items queued; warnings: {(warnings.Count == 0 ? "none" : string.Join("; ", warnings))}");
                (pause, gen2, slowest) = (pauseNow, gen2Now, TimeSpan.Zero);
                since.Restart();
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
