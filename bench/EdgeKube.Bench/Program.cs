using System.Globalization;
using EdgeKube.Bench.Infra;
using EdgeKube.Bench.Scenarios;

namespace EdgeKube.Bench;

/// <summary>edgekube-bench: runs the benchmark scenarios (docs/benchmarks.md) and writes their tables to bench/results/.</summary>
public static class Program
{
    private static readonly string[] Order = ["footprint", "startup", "failure", "bandwidth", "scale", "storm"];

    public static async Task<int> Main(string[] args)
    {
        var options = BenchOptions.Parse(args, out var names, out var error);
        if (error is not null)
        {
            Console.Error.WriteLine("edgekube-bench: " + error);
            Console.Error.WriteLine($"usage: bench/run.sh [{string.Join('|', Order)}|trace]... [--runs N] [--window SECONDS] [--nodes 100,1000] [--pods 0,10,30] [--pods-per-node 10] [--create-rate PODS_PER_S] [--out DIR] [--agent PATH] [--agent-env NAME=VALUE]... [--master-env NAME=VALUE]...");
            return 2;
        }

        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("edgekube-bench: needs root (it runs containerd): use bench/run.sh");
            return 2;
        }

        if (options.AgentBinary is { } agent)
        {
            AgentProc.Binary = agent;
        }

        AgentProc.ExtraEnvironment = options.AgentEnvironment;
        MasterProc.ExtraEnvironment = options.MasterEnvironment;
        var failed = 0;
        foreach (var name in names.Count == 0 ? [.. Order] : names)
        {
            Console.Error.WriteLine($"==> bench {name} ({DateTime.UtcNow:HH:mm:ss} UTC)");
            try
            {
                Report report = name switch
                {
                    "footprint" => await Footprint.RunAsync(options),
                    "startup" => await Startup.RunAsync(options),
                    "failure" => await Failure.RunAsync(options),
                    "bandwidth" => await Bandwidth.RunAsync(options),
                    "scale" => await Scale.RunAsync(options),
                    "storm" => await Storm.RunAsync(options),
                    "trace" => await Trace.RunAsync(options),
                    _ => throw new ArgumentException(name),
                };
                report.Write(options.OutDir, options.Machine);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"bench {name} failed: {e}");
                failed++;
            }
        }

        return failed == 0 ? 0 : 1;
    }
}

/// <summary>Command-line settings of a bench run.</summary>
public sealed record BenchOptions
{
    public int Runs { get; init; } = 3;

    /// <summary>Seconds of each idle measurement window.</summary>
    public int Window { get; init; } = 30;

    public IReadOnlyList<int> Nodes { get; init; } = [100, 1000];

    public int PodsPerNode { get; init; } = 10;

    /// <summary>The footprint scenario's pod counts, ascending: each step adds pods to those of the step before.</summary>
    public IReadOnlyList<int> FootprintPods { get; init; } = [0, 10, 30];

    /// <summary>
    /// Pods created per second in the scale scenario (0: as fast as 32 requests in flight go). SIG Scalability's
    /// load tests create at a fixed rate too, so that creation does not race the scheduler for the master's cores.
    /// </summary>
    public double CreateRate { get; init; }

    public string OutDir { get; init; } = Path.Combine(EdgeKube.Testing.ContainerdHost.RepoRoot, "bench", "results");

    /// <summary>Another agent executable than the published NativeAOT one (e.g. the JIT build, to attach dotnet-trace or dotnet-gcdump).</summary>
    public string? AgentBinary { get; init; }

    /// <summary>Environment variables for the agents the bench starts (experiments with runtime settings such as DOTNET_GCgen0size).</summary>
    public IReadOnlyDictionary<string, string> AgentEnvironment { get; init; } = new Dictionary<string, string>();

    /// <summary>Environment variables for the masters the bench starts, and not for the bench process that holds the hollow nodes.</summary>
    public IReadOnlyDictionary<string, string> MasterEnvironment { get; init; } = new Dictionary<string, string>();

    public string Machine { get; } =
        $"{Environment.ProcessorCount} CPUs ({CpuModel()}), {Environment.OSVersion.VersionString}, .NET {Environment.Version}";

    private static Dictionary<string, string> With(IReadOnlyDictionary<string, string> environment, string assignment)
    {
        var pair = assignment.Split('=', 2);
        if (pair.Length != 2 || pair[0].Length == 0)
        {
            throw new FormatException("expects NAME=VALUE");
        }

        return new Dictionary<string, string>(environment) { [pair[0]] = pair[1] };
    }

    public static BenchOptions Parse(string[] args, out List<string> scenarios, out string? error)
    {
        var o = new BenchOptions();
        scenarios = [];
        error = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new FormatException(args[i] + " needs a value");
            try
            {
                switch (args[i])
                {
                    case "--runs": o = o with { Runs = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--window": o = o with { Window = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--nodes": o = o with { Nodes = [.. Next().Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture))] }; break;
                    case "--pods": o = o with { FootprintPods = [.. Next().Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture))] }; break;
                    case "--pods-per-node": o = o with { PodsPerNode = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--create-rate": o = o with { CreateRate = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--out": o = o with { OutDir = Path.GetFullPath(Next()) }; break;
                    case "--agent": o = o with { AgentBinary = Path.GetFullPath(Next()) }; break;
                    case "--agent-env": o = o with { AgentEnvironment = With(o.AgentEnvironment, Next()) }; break;
                    case "--master-env": o = o with { MasterEnvironment = With(o.MasterEnvironment, Next()) }; break;
                    case "footprint" or "startup" or "failure" or "bandwidth" or "scale" or "storm" or "trace": scenarios.Add(args[i]); break;
                    default: error = $"unknown argument \"{args[i]}\""; return o;
                }
            }
            catch (FormatException e)
            {
                error = $"{args[i]}: {e.Message}";
                return o;
            }
        }

        if (o.Runs < 1 || o.Window < 1 || o.PodsPerNode < 0 || o.Nodes.Any(n => n < 1) || o.FootprintPods.Any(n => n < 0) || !o.FootprintPods.SequenceEqual(o.FootprintPods.Order()) || o.CreateRate < 0 || !double.IsFinite(o.CreateRate))
        {
            error = "--runs, --window and --nodes must be positive, --pods 0 or more and ascending, --create-rate 0 or more";
        }

        return o;
    }

    private static string CpuModel()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
