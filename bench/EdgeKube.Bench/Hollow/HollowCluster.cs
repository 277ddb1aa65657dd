using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Infra;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Hollow;

/// <summary>One real master (own process, embedded broker) and a fleet of hollow nodes, with the pod bookkeeping the scale scenarios share.</summary>
public sealed class HollowCluster : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _watch;
    private Task? _nodeWatch;

    private HollowCluster(MasterProc master, HollowFleet fleet, TcpProxy? proxy)
    {
        Master = master;
        Fleet = fleet;
        Proxy = proxy;
    }

    public MasterProc Master { get; }

    public HollowFleet Fleet { get; }

    /// <summary>The proxy the proxied nodes go through (null when none are).</summary>
    public TcpProxy? Proxy { get; }

    /// <summary>When each pod (by name) was first seen bound to a node, and Running.</summary>
    public ConcurrentDictionary<string, DateTime> BoundAt { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, DateTime> RunningAt { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Whether each node is Ready, as a watch on the API last showed it. Waiting on this instead of listing
    /// the nodes again and again matters at 10,000 nodes: each list is some 30 MB of JSON for the master to
    /// write and the bench to parse, and polling it every 250 ms for the lost nodes kept both so busy that
    /// the bench process, which also holds the hollow nodes, fell behind.
    /// </summary>
    public ConcurrentDictionary<string, bool> NodeReady { get; } = new(StringComparer.Ordinal);

    /// <summary>Starts a master and <paramref name="nodes"/> hollow nodes; the first <paramref name="proxied"/> go through a counting proxy.</summary>
    public static async Task<HollowCluster> StartAsync(int nodes, int proxied, TimeSpan keepAlive)
    {
        var master = new MasterProc();
        HollowFleet.WriteCredentials(master.DataDir, nodes);
        // The default pod network (10.244.0.0/16 in /24s) has room for 256 nodes, as Kubernetes' does;
        // a /8 has room for 65,536, so every hollow node gets its pod CIDR as a real one would.
        await master.StartAsync(gracePeriodSeconds: 40, "Information", "--cluster-cidr", "10.0.0.0/8");
        var proxy = proxied > 0 ? new TcpProxy(master.MqttPort) : null;
        var fleet = new HollowFleet(nodes, i => i < proxied ? proxy!.Port : master.MqttPort, keepAlive);
        var cluster = new HollowCluster(master, fleet, proxy);
        cluster._watch = master.WatchAsync("/api/v1/pods", cluster.OnPod, cluster._stop.Token);
        cluster._nodeWatch = master.WatchAsync("/api/v1/nodes", cluster.OnNode, cluster._stop.Token);
        return cluster;
    }

    private void OnNode(string type, JsonObject node)
    {
        if (node["metadata"]?["name"]?.GetValue<string>() is not { } name)
        {
            return;
        }

        if (type == "DELETED")
        {
            NodeReady.TryRemove(name, out _);
        }
        else if (type is "ADDED" or "MODIFIED")
        {
            NodeReady[name] = Infra.Cluster.Ready(node);
        }
    }

    private void OnPod(string type, JsonObject pod)
    {
        // An ERROR event (the watch fell behind, as during a reconnect storm) carries a Status, not a pod: the
        // watch ends there; the storm reads pods from the list, not from it.
        if (type is not ("ADDED" or "MODIFIED") || pod["metadata"]?["name"]?.GetValue<string>() is not { } name)
        {
            return;
        }

        if (pod["spec"]?["nodeName"]?.GetValue<string>() is { Length: > 0 })
        {
            BoundAt.TryAdd(name, DateTime.UtcNow);
        }

        if (Infra.Cluster.Phase(pod) == "Running")
        {
            RunningAt.TryAdd(name, DateTime.UtcNow);
        }
    }

    /// <summary>Names of the nodes the API shows Ready.</summary>
    public async Task<HashSet<string>> ReadyNodesAsync()
    {
        var list = await Master.GetAsync("/api/v1/nodes");
        return [.. list["items"]!.AsArray().Where(n => Infra.Cluster.Ready(n!.AsObject())).Select(n => n!["metadata"]!["name"]!.GetValue<string>())];
    }

    public async Task WaitNodesReadyAsync(int count, TimeSpan timeout) =>
        await Run.UntilAsync(() => Task.FromResult(NodeReady.Count(n => n.Value) >= count), timeout, $"{count} nodes Ready", 200);

    /// <summary>Waits until the watch has shown every one of <paramref name="names"/> not Ready.</summary>
    public async Task WaitNotReadyAsync(IReadOnlyCollection<string> names, TimeSpan timeout) =>
        await Run.UntilAsync(() => Task.FromResult(names.All(n => NodeReady.TryGetValue(n, out var ready) && !ready)), timeout, $"{names.Count} nodes NotReady", 100);

    /// <summary>Pod creates in flight at once (a client's concurrency, as kubemark's density test drives the API).</summary>
    public const int CreateParallelism = 32;

    /// <summary>Creates <paramref name="count"/> pods through the API; with a <paramref name="rate"/>, pod i is sent no earlier than i / rate seconds after the first.</summary>
    public async Task CreatePodsAsync(int count, double rate = 0)
    {
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = CreateParallelism }, async (i, _) =>
        {
            if (rate > 0 && TimeSpan.FromSeconds(i / rate) - clock.Elapsed is { Ticks: > 0 } wait)
            {
                await Task.Delay(wait);
            }

            await Master.PostAsync("/api/v1/namespaces/default/pods", $$$$"""
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"hp-{{{{i:D6}}}}","namespace":"default"},
                 "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"app","image":"{{{{ContainerdHost.BusyboxImageName}}}}","imagePullPolicy":"IfNotPresent","command":["sleep","36000"],
                 "resources":{"requests":{"cpu":"1m","memory":"1Mi"}}}]}}
                """);
        });
    }

    public async Task WaitAllRunningAsync(int count, TimeSpan timeout) =>
        await Run.UntilAsync(() => Task.FromResult(RunningAt.Count >= count), timeout, $"{count} pods Running (have {RunningAt.Count})", 200);

    public static async Task<double> TimeAsync(Func<Task> action)
    {
        var clock = Stopwatch.StartNew();
        await action();
        return clock.Elapsed.TotalSeconds;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var watch in new[] { _watch, _nodeWatch })
        {
            try
            {
                if (watch is not null)
                {
                    await watch;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The figures are taken; a watch that ended badly must not lose them.
                Console.Error.WriteLine($"bench: a watch had ended: {e.Message}");
            }
        }

        if (Proxy is not null)
        {
            await Proxy.DisposeAsync();
        }

        await Fleet.DisposeAsync();
        await Master.DisposeAsync();
        _stop.Dispose();
    }
}
