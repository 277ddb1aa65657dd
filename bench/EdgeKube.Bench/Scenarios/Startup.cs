using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Bench.Infra;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 2: <c>kubectl apply</c> of 1, 10 and 30 pods until each is Running as the API shows it
/// (a watch), per-pod latency percentiles; and in the same run the floor: the same CRI calls
/// (RunPodSandbox, CreateContainer, StartContainer) made directly, no agent and no master.
/// </summary>
public static class Startup
{
    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("startup", "Pod startup: kubectl apply → Running through the API, and the CRI floor",
            "pods per apply", "path", "p50 ms", "p90 ms", "p99 ms", "max ms", "pods measured", "target");
        await using var cluster = await Cluster.StartAsync();
        var running = new ConcurrentDictionary<string, DateTime>(StringComparer.Ordinal);
        using var stop = new CancellationTokenSource();
        var watch = cluster.Master.WatchAsync("/api/v1/namespaces/default/pods", (type, pod) =>
        {
            if (type != "DELETED" && Cluster.Phase(pod) == "Running")
            {
                running.TryAdd(pod["metadata"]!["uid"]!.GetValue<string>(), DateTime.UtcNow);
            }
        }, stop.Token);

        // One warm-up pod: the first sandbox pays for one-off work (CNI bridge creation, image unpack).
        await MeasureApplyAsync(cluster, running, "warm", 1, []);
        await MeasureFloorAsync(cluster.Containerd, "warm", 1);

        foreach (var batch in new[] { 1, 10, 30 })
        {
            var e2e = new List<double>();
            var agent = new List<double>();
            var floor = new List<double>();
            // More rounds for the single pod so its p99 means something.
            var rounds = batch == 1 ? Math.Max(o.Runs, 10) : o.Runs;
            for (var run = 0; run < rounds; run++)
            {
                // Agent path and floor alternate in the same run, so both see the same machine load.
                e2e.AddRange(await MeasureApplyAsync(cluster, running, $"st{batch}-{run}", batch, agent));
                floor.AddRange(await MeasureFloorAsync(cluster.Containerd, $"fl{batch}-{run}", batch));
            }

            var ratio = Summary.Percentile(e2e, 50) / Summary.Percentile(floor, 50);
            var agentRatio = Summary.Percentile(agent, 50) / Summary.Percentile(floor, 50);
            var p99 = Summary.Percentile(e2e, 99);
            var target = batch == 1 ? $"p99 ≤ 1000 ms: {Report.Verdict(p99 <= 1000)}; p50 {Pct(ratio)} over the floor"
                : $"p50 {Pct(ratio)} over the floor";
            Row(report, batch, "kubectl apply → Running (API)", e2e, target);
            Row(report, batch, "pod delivered to the agent → Running (API)", agent,
                batch == 1 ? $"agent ≤ 15% over the floor: {Report.Verdict(agentRatio <= 1.15)} (p50 {Pct(agentRatio)})" : $"p50 {Pct(agentRatio)} over the floor");
            Row(report, batch, "floor: CRI calls direct", floor, "");
            report.Data[$"batch{batch}"] = new JsonObject { ["e2eMs"] = Json(e2e), ["agentMs"] = Json(agent), ["floorMs"] = Json(floor), ["p50Ratio"] = ratio, ["agentP50Ratio"] = agentRatio };
        }

        await stop.CancelAsync();
        await watch;
        report.Note("Latency per pod: from just before `kubectl apply -f -` is started (so kubectl's own start-up, ~0.1–0.3 s, is included) until a watch on the API delivers the pod with phase Running. A batch of N pods is one apply of a multi-document YAML; every pod's latency is counted.");
        report.Note("Pod delivered to the agent → Running: from the first bytes the bench's proxy between broker and agent passes to the agent after the apply (the pod's message) until the API watch shows the pod Running. This is what the agent adds to the CRI calls (its own work, the extra CRI calls it makes, its status report) plus the status's short way back through broker, bridge and store; for a batch it counts from the first pod's message. `bench/run.sh trace` breaks a single pod's path down hop by hop.");
        report.Note("Floor: the bench's own CRI client (CriRuntimeClient) calls RunPodSandbox, CreateContainer, StartContainer for each pod (the batch in parallel) on the same containerd, image present; latency from the batch start to StartContainer's return. The agent path additionally has kubectl, the API server, the scheduler, the MQTT bridge, the broker, the agent's own status reporting and the API watch.");
        report.Note("Single-pod rows use max(runs, 10) rounds; percentiles are by nearest rank over all pods measured.");
        return report;
    }

    private static void Row(Report report, int batch, string path, List<double> ms, string target) =>
        report.Row(batch.ToString(CultureInfo.InvariantCulture), path, F(Summary.Percentile(ms, 50)), F(Summary.Percentile(ms, 90)), F(Summary.Percentile(ms, 99)), F(ms.Max()),
            ms.Count.ToString(CultureInfo.InvariantCulture), target);

    private static string F(double ms) => ms.ToString("0", CultureInfo.InvariantCulture);

    private static JsonObject Json(List<double> ms) => new()
    {
        ["p50"] = Summary.Percentile(ms, 50), ["p90"] = Summary.Percentile(ms, 90), ["p99"] = Summary.Percentile(ms, 99), ["max"] = ms.Max(), ["count"] = ms.Count,
    };

    private static string Pct(double ratio) => ((ratio - 1) * 100).ToString("+0;-0", CultureInfo.InvariantCulture) + "%";

    /// <summary>Applies <paramref name="count"/> pods and returns each one's latency from the apply; adds each one's latency from the pods' delivery to the agent to <paramref name="fromDelivery"/>.</summary>
    private static async Task<List<double>> MeasureApplyAsync(Cluster cluster, ConcurrentDictionary<string, DateTime> running, string prefix, int count, List<double> fromDelivery)
    {
        cluster.Proxy.Record();
        var t0 = DateTime.UtcNow;
        await cluster.ApplyAsync(Cluster.PodsYaml(prefix, count));
        await cluster.WaitRunningAsync(prefix, count, TimeSpan.FromMinutes(5));
        var list = await cluster.Master.GetAsync("/api/v1/namespaces/default/pods");
        var uids = list["items"]!.AsArray().Where(p => p!["metadata"]!["name"]!.GetValue<string>().StartsWith(prefix + "-", StringComparison.Ordinal))
            .Select(p => p!["metadata"]!["uid"]!.GetValue<string>()).ToList();
        // The watch may deliver a moment after the list showed Running.
        await Run.UntilAsync(() => Task.FromResult(uids.All(running.ContainsKey)), TimeSpan.FromSeconds(30), "the watch to show every pod Running");
        var result = uids.Select(u => (running[u] - t0).TotalMilliseconds).ToList();
        // Bigger than a PINGRESP (2 bytes) or PUBACK (4): the pod's PUBLISH.
        var delivered = cluster.Proxy.Chunks.Where(c => !c.Up && c.At >= t0 && c.Bytes > 4).Select(c => c.At).DefaultIfEmpty(t0).Min();
        fromDelivery.AddRange(uids.Select(u => (running[u] - delivered).TotalMilliseconds));
        await cluster.DeleteAllPodsAsync(TimeSpan.FromMinutes(3));
        return result;
    }

    private static async Task<List<double>> MeasureFloorAsync(ContainerdHost containerd, string prefix, int count)
    {
        var runtime = containerd.Runtime;
        var logs = Directory.CreateTempSubdirectory("edgekube-bench-floor-").FullName;
        var started = new ConcurrentBag<(string Sandbox, double Ms)>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            var uid = Guid.NewGuid().ToString();
            var sandbox = new PodSandboxConfig
            {
                Metadata = new PodSandboxMetadata { Name = $"{prefix}-{i}", Namespace = "bench-floor", Uid = uid },
                Hostname = $"{prefix}-{i}",
                LogDirectory = Path.Combine(logs, uid),
                Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Pod, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Pod } } },
            };
            sandbox.Labels["edgekube.bench/floor"] = "true";
            Directory.CreateDirectory(sandbox.LogDirectory);
            var id = await runtime.RunPodSandboxAsync(sandbox, CancellationToken.None);
            var container = new ContainerConfig
            {
                Metadata = new ContainerMetadata { Name = "app" },
                Image = new ImageSpec { Image = ContainerdHost.BusyboxImageName },
                Command = { "sh", "-c", "exec sleep 36000" },
                LogPath = "app/0.log",
            };
            var cid = await runtime.CreateContainerAsync(id, container, sandbox, CancellationToken.None);
            await runtime.StartContainerAsync(cid, CancellationToken.None);
            started.Add((id, clock.Elapsed.TotalMilliseconds));
        }));

        foreach (var (sandbox, _) in started)
        {
            await runtime.StopPodSandboxAsync(sandbox, CancellationToken.None);
            await runtime.RemovePodSandboxAsync(sandbox, CancellationToken.None);
        }

        Directory.Delete(logs, recursive: true);
        return [.. started.Select(s => s.Ms)];
    }
}
