using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Agent.Hosting;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using EdgeKube.Bench.Infra;
using EdgeKube.Testing;
using k8s;

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
                // Agent path and floor alternate in the same run, so both see the same machine load; each
                // starts after the same pause since the other's cleanup, whose tail (shims exiting,
                // network namespaces going) would otherwise fall on whichever starts right after it.
                await Task.Delay(Settle);
                e2e.AddRange(await MeasureApplyAsync(cluster, running, $"st{batch}-{run}", batch, agent));
                await Task.Delay(Settle);
                floor.AddRange(await MeasureFloorAsync(cluster.Containerd, $"fl{batch}-{run}", batch));
            }

            var ratio = Summary.Percentile(e2e, 50) / Summary.Percentile(floor, 50);
            var agentRatio = Summary.Percentile(agent, 50) / Summary.Percentile(floor, 50);
            var p99 = Summary.Percentile(e2e, 99);
            var target = batch == 1 ? $"p99 ≤ 1000 ms: {Report.Verdict(p99 <= 1000)}; p50 {Pct(ratio)} over the floor"
                : $"p50 {Pct(ratio)} over the floor";
            Row(report, batch, "kubectl apply → Running (API)", e2e, target);
            Row(report, batch, "agent: pod message in → Running status out", agent,
                batch == 1 ? $"agent ≤ 15% over the floor: {Report.Verdict(agentRatio <= 1.15)} (p50 {Pct(agentRatio)})" : $"p50 {Pct(agentRatio)} over the floor");
            Row(report, batch, "floor: CRI calls direct", floor, "");
            report.Data[$"batch{batch}"] = new JsonObject { ["e2eMs"] = Json(e2e), ["agentMs"] = Json(agent), ["floorMs"] = Json(floor), ["p50Ratio"] = ratio, ["agentP50Ratio"] = agentRatio };
        }

        await stop.CancelAsync();
        await watch;
        report.Note("Latency per pod: from just before `kubectl apply -f -` is started (so kubectl's own start-up, ~0.1–0.3 s, is included) until a watch on the API delivers the pod with phase Running. A batch of N pods is one apply of a multi-document YAML; every pod's latency is counted.");
        report.Note("Agent: for each pod, from its message reaching the agent to its Running status leaving the agent, both read from the MQTT bytes through the bench's proxy between broker and agent (the first chunk to the agent naming the pod; the first chunk from it with the pod's name and phase Running). This is the agent's whole share: its own work, the CRI calls it makes besides the floor's three (list, sandbox and container status, image status), its status report. The rest of the end-to-end time is kubectl's process start-up, the API server, scheduler and bridge, and the status's way back to the watch; `bench/run.sh trace` breaks a single pod's path down hop by hop.");
        report.Note("Floor: the bench's own CRI client (CriRuntimeClient) calls RunPodSandbox, CreateContainer, StartContainer for each pod (the batch in parallel) on the same containerd and CNI, image present, with the configs the agent's own RuntimeConfigBuilder makes from the same manifests (labels, annotations, log paths, namespaces, cgroup values, the image by id); latency from the batch start to StartContainer's return. The agent path additionally has kubectl, the API server, the scheduler, the MQTT bridge, the broker, the agent's own status reporting and the API watch.");
        report.Note("Agent path and floor alternate, each starting 2 s after the previous cleanup.");
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

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    private static string Pct(double ratio) => ((ratio - 1) * 100).ToString("+0;-0", CultureInfo.InvariantCulture) + "%";

    /// <summary>Applies <paramref name="count"/> pods and returns each one's latency from the apply; adds each one's time in the agent to <paramref name="fromDelivery"/>.</summary>
    private static async Task<List<double>> MeasureApplyAsync(Cluster cluster, ConcurrentDictionary<string, DateTime> running, string prefix, int count, List<double> fromDelivery)
    {
        cluster.Proxy.Record();
        var t0 = DateTime.UtcNow;
        await cluster.ApplyAsync(Cluster.PodsYaml(prefix, count));
        await cluster.WaitRunningAsync(prefix, count, TimeSpan.FromMinutes(5));
        var list = await cluster.Master.GetAsync("/api/v1/namespaces/default/pods");
        var mine = list["items"]!.AsArray().Where(p => p!["metadata"]!["name"]!.GetValue<string>().StartsWith(prefix + "-", StringComparison.Ordinal)).ToList();
        var uids = mine.Select(p => p!["metadata"]!["uid"]!.GetValue<string>()).ToList();
        var names = mine.Select(p => p!["metadata"]!["name"]!.GetValue<string>()).ToList();
        // The watch may deliver a moment after the list showed Running.
        await Run.UntilAsync(() => Task.FromResult(uids.All(running.ContainsKey)), TimeSpan.FromSeconds(30), "the watch to show every pod Running");
        var result = uids.Select(u => (running[u] - t0).TotalMilliseconds).ToList();
        // The agent's own time per pod, from the MQTT bytes through the proxy: from the pod's message
        // reaching the agent (the first one naming it: the pod comes before the index that lists it)
        // to its Running status leaving the agent.
        var chunks = cluster.Proxy.Chunks.Where(c => c.At >= t0).ToList();
        foreach (var name in names)
        {
            var quoted = $"\"name\":\"{name}\"";
            var arrived = chunks.FirstOrDefault(c => !c.Up && c.Holds(quoted));
            var reported = chunks.FirstOrDefault(c => c.Up && c.Holds(quoted, "\"phase\":\"Running\""));
            if (arrived is not null && reported is not null)
            {
                fromDelivery.Add((reported.At - arrived.At).TotalMilliseconds);
            }
        }
        await cluster.DeleteAllPodsAsync(TimeSpan.FromMinutes(3));
        return result;
    }

    /// <summary>The floor: the three CRI calls per pod, the pods in parallel; each pod's time from the start. With <paramref name="calls"/>, each call's own duration too (trace).</summary>
    internal static async Task<List<double>> MeasureFloorAsync(ContainerdHost containerd, string prefix, int count, ConcurrentDictionary<string, ConcurrentBag<double>>? calls = null)
    {
        async Task<T> Timed<T>(string call, Func<Task<T>> invoke)
        {
            var started = Stopwatch.GetTimestamp();
            var result = await invoke();
            calls?.GetOrAdd(call, _ => []).Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return result;
        }

        var runtime = containerd.Runtime;
        var logs = Directory.CreateTempSubdirectory("edgekube-bench-floor-").FullName;
        // The agent's own config builder, on the same manifests the agent path applies: the same sandbox
        // and container configs (labels, annotations, log paths, namespaces, cgroup values), the image by
        // the id the agent resolves it to; only the label that makes the agent adopt a sandbox is left out.
        var builder = new RuntimeConfigBuilder(new NodeLayout(Cluster.Node, Path.Combine(logs, "pods"), logs, NodeFacts.MemoryCapacityBytes()));
        var imageId = (await runtime.ImageStatusAsync(ContainerdHost.BusyboxImageName, CancellationToken.None))?.Id
            ?? throw new InvalidOperationException("the busybox image is not in the bench's containerd");
        var pods = PodManifest.Parse(Cluster.PodsYaml(prefix, count)).ToList();
        var started = new ConcurrentBag<(string Sandbox, double Ms)>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(pods.Select(async pod =>
        {
            pod.Metadata.NamespaceProperty = "bench-floor";
            pod.Metadata.Uid = Guid.NewGuid().ToString();
            // What kubectl apply adds and the agent therefore passes on as a sandbox annotation.
            pod.Metadata.Annotations = new Dictionary<string, string> { ["kubectl.kubernetes.io/last-applied-configuration"] = KubernetesJson.Serialize(pod) };
            PodValidation.ApplyDefaults(pod);
            pod.Spec.NodeName = Cluster.Node;
            var sandbox = builder.BuildSandboxConfig(pod, 0);
            sandbox.Labels.Remove(RuntimeLabels.ManagedBy);
            Directory.CreateDirectory(sandbox.LogDirectory);
            var id = await Timed("RunPodSandbox", () => runtime.RunPodSandboxAsync(sandbox, CancellationToken.None));
            var container = builder.BuildContainerConfig(pod, pod.Spec.Containers[0], imageId, 0, null, isInit: false);
            container.Labels.Remove(RuntimeLabels.ManagedBy);
            var cid = await Timed("CreateContainer", () => runtime.CreateContainerAsync(id, container, sandbox, CancellationToken.None));
            await Timed("StartContainer", async () =>
            {
                await runtime.StartContainerAsync(cid, CancellationToken.None);
                return true;
            });
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
