using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Infra;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Where one pod's startup time goes: the startup scenario's single-pod path with the master and the
/// agent logging at Debug, each hop timestamped (the bench's own clock for kubectl and the API watch,
/// the components' log lines for the rest, the proxy for bytes on the MQTT link), one pod at a time.
/// A diagnostic, not one of issue 6's figures: Debug logging itself costs a little time.
/// </summary>
public static partial class Trace
{
    /// <summary>The hops, in the order a pod passes them; each with how to find it for pod <c>{0}</c>.</summary>
    private static readonly (string Hop, Source From, string Needle)[] Hops =
    [
        ("API: POST pods answered (kubectl)", Source.Master, "POST /api/v1/namespaces/default/pods: 201"),
        ("watch: ADDED", Source.Watch, "ADDED"),
        ("scheduler: bound", Source.Master, "Pod default/{0} bound to node"),
        ("bridge: pod published", Source.Master, "Pod default/{0} published to node"),
        ("proxy: first bytes to the agent", Source.ProxyDown, ""),
        ("agent: pod received", Source.Agent, "Pod default/{0} received from the master"),
        ("agent: worker turn", Source.Agent, "(default/{0}): sync turn"),
        ("agent: status Pending published", Source.Agent, "Publishing status of pod default/{0}: Pending"),
        ("agent: creating sandbox", Source.Agent, "Creating sandbox for pod default/{0}"),
        ("agent: sandbox ready", Source.Agent, "of pod default/{0} is ready"),
        ("agent: container created", Source.Agent, "Created container default/{0}/app"),
        ("agent: container started", Source.Agent, "Started container default/{0}/app"),
        ("agent: status Running published", Source.Agent, "Publishing status of pod default/{0}: Running"),
        ("proxy: Running status from the agent", Source.ProxyUp, "Running"),
        ("bridge: Running applied", Source.Master, "Status of pod default/{0} from node bench-node applied: Running"),
        ("watch: Running", Source.Watch, "Running"),
    ];

    private enum Source
    {
        Master,
        Agent,
        Watch,
        ProxyDown,
        ProxyUp,
    }

    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("trace", "Pod startup, hop by hop: one pod, kubectl apply → Running (Debug logs)",
            "hop", "ms after apply (median)", "p90", "step (median)", "pods");
        await using var cluster = await Cluster.StartAsync(logLevel: "Debug");
        var lines = new ConcurrentQueue<(Source From, string Line)>();
        cluster.Master.Lines.LineAdded += l => lines.Enqueue((Source.Master, l));
        cluster.Agent.Lines.LineAdded += l => lines.Enqueue((Source.Agent, l));
        cluster.Proxy.Record();
        var watched = new ConcurrentQueue<(DateTime At, string Name, string What)>();
        using var stop = new CancellationTokenSource();
        var watch = cluster.Master.WatchAsync("/api/v1/namespaces/default/pods", (type, pod) =>
        {
            var name = pod["metadata"]!["name"]!.GetValue<string>();
            watched.Enqueue((DateTime.UtcNow, name, type == "ADDED" ? "ADDED" : Cluster.Phase(pod)));
        }, stop.Token);

        // Warm-up, as the startup scenario does.
        await cluster.ApplyAsync(Cluster.PodsYaml("trwarm", 1));
        await cluster.WaitRunningAsync("trwarm", 1, TimeSpan.FromMinutes(5));
        await cluster.DeleteAllPodsAsync(TimeSpan.FromMinutes(3));

        var rounds = Math.Max(o.Runs, 10);
        var floorCalls = new ConcurrentDictionary<string, ConcurrentBag<double>>(StringComparer.Ordinal);
        var floorTotal = new List<double>();
        var offsets = Hops.Select(_ => new List<double>()).ToArray();
        var steps = Hops.Select(_ => new List<double>()).ToArray();
        var raw = new JsonArray();
        var criCalls = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        for (var run = 0; run < rounds; run++)
        {
            // The floor's CRI calls in between, as the startup scenario does, to compare call by call.
            await Task.Delay(TimeSpan.FromSeconds(2));
            floorTotal.AddRange(await Startup.MeasureFloorAsync(cluster.Containerd, $"trfl{run}", 1, floorCalls));
            await Task.Delay(TimeSpan.FromSeconds(2));
            var prefix = $"tr{run}";
            var name = prefix + "-0";
            lines.Clear();
            var t0 = DateTime.UtcNow;
            await cluster.ApplyAsync(Cluster.PodsYaml(prefix, 1));
            await cluster.WaitRunningAsync(prefix, 1, TimeSpan.FromMinutes(5));
            await Run.UntilAsync(() => Task.FromResult(watched.Any(w => w.Name == name && w.What == "Running")), TimeSpan.FromSeconds(30), "the watch to show the pod Running");
            await Task.Delay(300); // the last log lines
            var seen = lines.ToArray();
            double? last = 0;
            for (var i = 0; i < Hops.Length; i++)
            {
                var (_, from, needle) = Hops[i];
                var text = string.Format(CultureInfo.InvariantCulture, needle, name);
                DateTime? at = from switch
                {
                    Source.Watch => watched.Where(w => w.Name == name && w.What == text).Select(w => (DateTime?)w.At).FirstOrDefault(),
                    Source.ProxyUp => cluster.Proxy.Chunks.Where(c => c.Up && c.At > t0 && c.Holds($"\"name\":\"{name}\"", $"\"phase\":\"{text}\"")).Select(c => (DateTime?)c.At).FirstOrDefault(),
                    Source.ProxyDown => cluster.Proxy.Chunks.Where(c => !c.Up && c.At > t0 && c.Holds($"\"name\":\"{name}\"")).Select(c => (DateTime?)c.At).FirstOrDefault(),
                    _ => seen.Where(l => l.From == from && l.Line.Contains(text, StringComparison.Ordinal)).Select(l => Stamp(l.Line)).FirstOrDefault(s => s is not null && s >= t0),
                };
                if (at is { } a)
                {
                    var ms = (a - t0).TotalMilliseconds;
                    offsets[i].Add(ms);
                    if (last is { } l)
                    {
                        steps[i].Add(ms - l);
                    }

                    last = ms;
                }
                else
                {
                    last = null;
                }
            }

            // CRI calls the agent made between receiving the pod and publishing it Running.
            var from0 = offsets[5].Count > 0 ? t0.AddMilliseconds(offsets[5][^1]) : t0;
            var until = offsets[12].Count > 0 ? t0.AddMilliseconds(offsets[12][^1]) : DateTime.MaxValue;
            foreach (var (_, line) in seen.Where(l => l.From == Source.Agent))
            {
                if (Stamp(line) is { } at && at >= from0 && at <= until && CriCall().Match(line) is { Success: true } m)
                {
                    var call = m.Groups[1].Value;
                    if (!criCalls.TryGetValue(call, out var list))
                    {
                        criCalls[call] = list = [];
                    }

                    list.Add(double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
                }
            }

            // The log lines of the last pod, to read beside the table.
            if (run == rounds - 1)
            {
                foreach (var (from, line) in seen)
                {
                    raw.Add($"{from}: {line}");
                }
            }

            await cluster.DeleteAllPodsAsync(TimeSpan.FromMinutes(3));
            cluster.Proxy.Record();
        }

        await stop.CancelAsync();
        await watch;

        var data = new JsonArray();
        for (var i = 0; i < Hops.Length; i++)
        {
            var values = offsets[i];
            if (values.Count == 0)
            {
                report.Row(Hops[i].Hop, "not seen", "", "", "0");
                continue;
            }

            var median = Summary.Percentile(values, 50);
            var step = steps[i].Count > 0 ? Summary.Percentile(steps[i], 50) : double.NaN;
            report.Row(Hops[i].Hop, F(median), F(Summary.Percentile(values, 90)), double.IsNaN(step) ? "" : (step >= 0 ? "+" : "") + F(step), values.Count.ToString(CultureInfo.InvariantCulture));
            data.Add(new JsonObject { ["hop"] = Hops[i].Hop, ["p50"] = median, ["p90"] = Summary.Percentile(values, 90), ["stepP50"] = double.IsNaN(step) ? null : step, ["count"] = values.Count });
        }

        report.Data["hops"] = data;
        var calls = new JsonObject();
        foreach (var (call, list) in criCalls.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            report.Row($"CRI {call} (per call, {list.Count / (double)rounds:0.#} per pod)", "", F(Summary.Percentile(list, 90)), F(Summary.Percentile(list, 50)), list.Count.ToString(CultureInfo.InvariantCulture));
            calls[call] = new JsonObject { ["p50"] = Summary.Percentile(list, 50), ["p90"] = Summary.Percentile(list, 90), ["count"] = list.Count };
        }

        report.Data["criCalls"] = calls;
        var floorData = new JsonObject();
        foreach (var (call, bag) in floorCalls.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var list = bag.ToList();
            report.Row($"floor: CRI {call} (the bench's client, between the pods)", "", F(Summary.Percentile(list, 90)), F(Summary.Percentile(list, 50)), list.Count.ToString(CultureInfo.InvariantCulture));
            floorData[call] = new JsonObject { ["p50"] = Summary.Percentile(list, 50), ["p90"] = Summary.Percentile(list, 90), ["count"] = list.Count };
        }

        report.Row("floor: the three calls", "", F(Summary.Percentile(floorTotal, 90)), F(Summary.Percentile(floorTotal, 50)), floorTotal.Count.ToString(CultureInfo.InvariantCulture));
        floorData["total"] = new JsonObject { ["p50"] = Summary.Percentile(floorTotal, 50), ["p90"] = Summary.Percentile(floorTotal, 90) };
        report.Data["floorCalls"] = floorData;
        report.Data["lastPodLog"] = raw;
        report.Note($"{rounds} single-pod applies, one at a time, after one warm-up pod. Times are from just before `kubectl apply` starts; each hop's median over the pods. \"step\" is the median over the pods of the time from the previous hop to this one.");
        report.Note("CRI rows: the agent's own calls between receiving the pod and publishing it Running, from its Debug log (duration of each gRPC call as the agent sees it); \"step\" there is the median duration, p90 its 90th percentile.");
        report.Note("Sources: the bench's clock for the API watch and the proxy between agent and broker; the master's and the agent's own log lines (UTC, millisecond timestamps) at Debug for the rest. All processes run on this machine, so the clocks are the same.");
        return report;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"CRI (\w+) took ([0-9.]+) ms")]
    private static partial System.Text.RegularExpressions.Regex CriCall();

    private static string F(double ms) => ms.ToString("0", CultureInfo.InvariantCulture);

    /// <summary>The timestamp at the start of a console log line ("2026-11-26T01:00:00.123Z ...").</summary>
    private static DateTime? Stamp(string line)
    {
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        return space > 0 && DateTime.TryParseExact(line[..space], "yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t) ? t : null;
    }
}
