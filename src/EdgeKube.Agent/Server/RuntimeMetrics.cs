using System.Globalization;
using System.Runtime;
using System.Text;

namespace EdgeKube.Agent.Server;

/// <summary>
/// The agent's own .NET runtime figures on <c>/metrics</c> (garbage collector, thread pool), under the
/// Prometheus forms of the OpenTelemetry .NET runtime metric names, so a footprint can be broken down
/// without attaching a tool to the board.
/// </summary>
public static class RuntimeMetrics
{
    public static void Write(StringBuilder sb)
    {
        var info = GC.GetGCMemoryInfo();
        Gauge(sb, "dotnet_gc_last_collection_heap_size_bytes", "Managed heap size (all generations) after the last collection.", info.HeapSizeBytes);
        Gauge(sb, "dotnet_gc_last_collection_memory_committed_size_bytes", "Memory the GC had committed after the last collection.", info.TotalCommittedBytes);
        Gauge(sb, "dotnet_gc_last_collection_heap_fragmentation_size_bytes", "Free space inside the managed heap after the last collection.", info.FragmentedBytes);
        Gauge(sb, "dotnet_gc_heap_total_available_bytes", "Managed bytes allocated and not yet collected (GC.GetTotalMemory).", GC.GetTotalMemory(false));
        sb.AppendLine("# HELP dotnet_gc_heap_total_allocated_bytes_total Bytes allocated on the managed heap since the start.");
        sb.AppendLine("# TYPE dotnet_gc_heap_total_allocated_bytes_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"dotnet_gc_heap_total_allocated_bytes_total {GC.GetTotalAllocatedBytes(false)}\n");
        sb.AppendLine("# HELP dotnet_gc_collections_total Garbage collections since the start, by the generation collected.");
        sb.AppendLine("# TYPE dotnet_gc_collections_total counter");
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            // CollectionCount(n) counts collections of generation n or higher: report each one alone.
            var count = GC.CollectionCount(generation) - (generation < GC.MaxGeneration ? GC.CollectionCount(generation + 1) : 0);
            sb.Append(CultureInfo.InvariantCulture, $"dotnet_gc_collections_total{{gc_heap_generation=\"gen{generation}\"}} {count}\n");
        }

        sb.AppendLine("# HELP dotnet_gc_pause_time_seconds_total Time the GC has paused the process.");
        sb.AppendLine("# TYPE dotnet_gc_pause_time_seconds_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"dotnet_gc_pause_time_seconds_total {GC.GetTotalPauseDuration().TotalSeconds:0.######}\n");
        // The settings the GC runs with (GC.GetConfigurationVariables), which shows whether the budget the agent
        // embeds (EdgeKube.Agent.csproj) or a DOTNET_ variable took effect.
        var config = GC.GetConfigurationVariables();
        sb.AppendLine("# HELP dotnet_gc_info The GC's mode (1).");
        sb.AppendLine("# TYPE dotnet_gc_info gauge");
        sb.Append(CultureInfo.InvariantCulture, $"dotnet_gc_info{{server=\"{Flag(GCSettings.IsServerGC)}\",concurrent=\"{Flag(config.GetValueOrDefault("ConcurrentGC") is true)}\",latency_mode=\"{GCSettings.LatencyMode}\"}} 1\n");
        if (config.GetValueOrDefault("GCGen0MaxBudget") is { } budget)
        {
            Gauge(sb, "dotnet_gc_gen0_max_budget_bytes", "The largest allocation budget of generation 0 (GCGen0MaxBudget).", Convert.ToInt64(budget, CultureInfo.InvariantCulture));
        }

        Gauge(sb, "dotnet_thread_pool_thread_count", "Thread pool threads.", ThreadPool.ThreadCount);
    }

    private static string Flag(bool value) => value ? "true" : "false";

    private static void Gauge(StringBuilder sb, string name, string help, long value)
    {
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    }
}
