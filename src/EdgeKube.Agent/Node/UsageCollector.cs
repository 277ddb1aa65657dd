using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Runtime;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Node;

/// <summary>CPU and memory of one container, from CRI stats.</summary>
public sealed record ContainerUsage(string Name, ulong CpuCoreNanoSeconds, ulong? CpuNanoCores, ulong MemoryWorkingSetBytes, ulong? MemoryUsageBytes);

/// <summary>CPU and memory of one pod: the sum of its containers.</summary>
public sealed record PodUsage(string Namespace, string Name, string Uid, IReadOnlyList<ContainerUsage> Containers)
{
    public ulong CpuCoreNanoSeconds => (ulong)Containers.Sum(c => (decimal)c.CpuCoreNanoSeconds);

    public ulong? CpuNanoCores => Containers.All(c => c.CpuNanoCores is null) ? null : (ulong)Containers.Sum(c => (decimal)(c.CpuNanoCores ?? 0));

    public ulong MemoryWorkingSetBytes => (ulong)Containers.Sum(c => (decimal)c.MemoryWorkingSetBytes);
}

/// <summary>One sample of the node's and the pods' usage.</summary>
public sealed record UsageSample(DateTimeOffset Time, double? NodeCpuSeconds, ulong? NodeCpuNanoCores, long? NodeMemoryWorkingSetBytes, long? NodeMemoryAvailableBytes, IReadOnlyList<PodUsage> Pods);

/// <summary>
/// Collects usage every <see cref="Period"/> (kubelet's housekeeping interval): the node's CPU from
/// /proc/stat and memory from /proc/meminfo, the containers' from CRI ListContainerStats (grouped into
/// pods by their labels). Served on <c>/metrics</c> under kubelet's resource metric names and on
/// <c>/stats/summary</c> in kubelet's Summary API shape, which is where Kubernetes reads usage from.
/// </summary>
public sealed partial class UsageCollector(IContainerRuntime runtime, HostReader host, TimeProvider time, ILogger<UsageCollector> logger)
{
    private (DateTimeOffset Time, double Seconds)? _lastCpu;

    public TimeSpan Period { get; init; } = TimeSpan.FromSeconds(10);

    public UsageSample? Last { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await CollectAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(Period, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async Task<UsageSample> CollectAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cpu = host.CpuSecondsTotal();
        ulong? nanoCores = null;
        if (cpu is { } seconds && _lastCpu is { } last && now > last.Time && seconds >= last.Seconds)
        {
            nanoCores = (ulong)((seconds - last.Seconds) / (now - last.Time).TotalSeconds * 1e9);
        }

        if (cpu is { } s)
        {
            _lastCpu = (now, s);
        }

        var memory = host.Memory();
        IReadOnlyList<PodUsage> pods = Last?.Pods ?? [];
        try
        {
            var stats = await runtime.ListContainerStatsAsync(null, cancellationToken).ConfigureAwait(false);
            pods = [.. stats
                .Where(st => st.Attributes?.Labels.ContainsKey(RuntimeLabels.PodUid) == true)
                .GroupBy(st => st.Attributes.Labels[RuntimeLabels.PodUid])
                .Select(g =>
                {
                    var labels = g.First().Attributes.Labels;
                    return new PodUsage(labels.GetValueOrDefault(RuntimeLabels.PodNamespace, string.Empty), labels.GetValueOrDefault(RuntimeLabels.PodName, string.Empty), g.Key,
                        [.. g.Select(st => new ContainerUsage(
                            st.Attributes.Metadata?.Name ?? st.Attributes.Labels.GetValueOrDefault(RuntimeLabels.ContainerName, st.Attributes.Id),
                            st.Cpu?.UsageCoreNanoSeconds?.Value ?? 0,
                            st.Cpu?.UsageNanoCores?.Value,
                            st.Memory?.WorkingSetBytes?.Value ?? 0,
                            st.Memory?.UsageBytes?.Value))
                            .OrderBy(c => c.Name, StringComparer.Ordinal)]);
                })
                .OrderBy(p => p.Namespace, StringComparer.Ordinal).ThenBy(p => p.Name, StringComparer.Ordinal)];
        }
        catch (RuntimeException e)
        {
            LogStatsFailed(e.Message);
        }

        var sample = new UsageSample(now, cpu, nanoCores, memory is { } m ? m.Total - m.Available : null, memory?.Available, pods);
        Last = sample;
        return sample;
    }

    /// <summary>kubelet's /metrics/resource figures, Prometheus text.</summary>
    public static void WriteMetrics(StringBuilder sb, UsageSample? sample)
    {
        if (sample is null)
        {
            return;
        }

        var ms = sample.Time.ToUnixTimeMilliseconds();
        sb.AppendLine("# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds");
        sb.AppendLine("# TYPE node_cpu_usage_seconds_total counter");
        if (sample.NodeCpuSeconds is { } cpu)
        {
            sb.Append(CultureInfo.InvariantCulture, $"node_cpu_usage_seconds_total {cpu:0.###} {ms}\n");
        }

        sb.AppendLine("# HELP node_memory_working_set_bytes Current working set of the node in bytes");
        sb.AppendLine("# TYPE node_memory_working_set_bytes gauge");
        if (sample.NodeMemoryWorkingSetBytes is { } mem)
        {
            sb.Append(CultureInfo.InvariantCulture, $"node_memory_working_set_bytes {mem} {ms}\n");
        }

        sb.AppendLine("# HELP pod_cpu_usage_seconds_total Cumulative cpu time consumed by the pod in core-seconds");
        sb.AppendLine("# TYPE pod_cpu_usage_seconds_total counter");
        foreach (var p in sample.Pods)
        {
            sb.Append(CultureInfo.InvariantCulture, $"pod_cpu_usage_seconds_total{{namespace=\"{p.Namespace}\",pod=\"{p.Name}\"}} {p.CpuCoreNanoSeconds / 1e9:0.#########} {ms}\n");
        }

        sb.AppendLine("# HELP pod_memory_working_set_bytes Current working set of the pod in bytes");
        sb.AppendLine("# TYPE pod_memory_working_set_bytes gauge");
        foreach (var p in sample.Pods)
        {
            sb.Append(CultureInfo.InvariantCulture, $"pod_memory_working_set_bytes{{namespace=\"{p.Namespace}\",pod=\"{p.Name}\"}} {p.MemoryWorkingSetBytes} {ms}\n");
        }

        sb.AppendLine("# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds");
        sb.AppendLine("# TYPE container_cpu_usage_seconds_total counter");
        foreach (var p in sample.Pods)
        {
            foreach (var c in p.Containers)
            {
                sb.Append(CultureInfo.InvariantCulture, $"container_cpu_usage_seconds_total{{container=\"{c.Name}\",namespace=\"{p.Namespace}\",pod=\"{p.Name}\"}} {c.CpuCoreNanoSeconds / 1e9:0.#########} {ms}\n");
            }
        }

        sb.AppendLine("# HELP container_memory_working_set_bytes Current working set of the container in bytes");
        sb.AppendLine("# TYPE container_memory_working_set_bytes gauge");
        foreach (var p in sample.Pods)
        {
            foreach (var c in p.Containers)
            {
                sb.Append(CultureInfo.InvariantCulture, $"container_memory_working_set_bytes{{container=\"{c.Name}\",namespace=\"{p.Namespace}\",pod=\"{p.Name}\"}} {c.MemoryWorkingSetBytes} {ms}\n");
            }
        }
    }

    /// <summary>kubelet's Summary API (<c>/stats/summary</c>): node and pods, cpu and memory.</summary>
    public static string Summary(string nodeName, UsageSample? sample)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            var time = (sample?.Time ?? DateTimeOffset.UnixEpoch).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            w.WriteStartObject();
            w.WriteStartObject("node");
            w.WriteString("nodeName", nodeName);
            w.WriteStartObject("cpu");
            w.WriteString("time", time);
            if (sample?.NodeCpuNanoCores is { } nc)
            {
                w.WriteNumber("usageNanoCores", nc);
            }

            if (sample?.NodeCpuSeconds is { } cs)
            {
                w.WriteNumber("usageCoreNanoSeconds", (ulong)(cs * 1e9));
            }

            w.WriteEndObject();
            w.WriteStartObject("memory");
            w.WriteString("time", time);
            if (sample?.NodeMemoryAvailableBytes is { } avail)
            {
                w.WriteNumber("availableBytes", avail);
            }

            if (sample?.NodeMemoryWorkingSetBytes is { } ws)
            {
                w.WriteNumber("usageBytes", ws);
                w.WriteNumber("workingSetBytes", ws);
            }

            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartArray("pods");
            foreach (var p in sample?.Pods ?? [])
            {
                w.WriteStartObject();
                w.WriteStartObject("podRef");
                w.WriteString("name", p.Name);
                w.WriteString("namespace", p.Namespace);
                w.WriteString("uid", p.Uid);
                w.WriteEndObject();
                WriteUsage(w, time, p.CpuCoreNanoSeconds, p.CpuNanoCores, p.MemoryWorkingSetBytes);
                w.WriteStartArray("containers");
                foreach (var c in p.Containers)
                {
                    w.WriteStartObject();
                    w.WriteString("name", c.Name);
                    WriteUsage(w, time, c.CpuCoreNanoSeconds, c.CpuNanoCores, c.MemoryWorkingSetBytes);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteUsage(Utf8JsonWriter w, string time, ulong coreNanoSeconds, ulong? nanoCores, ulong workingSet)
    {
        w.WriteStartObject("cpu");
        w.WriteString("time", time);
        if (nanoCores is { } n)
        {
            w.WriteNumber("usageNanoCores", n);
        }

        w.WriteNumber("usageCoreNanoSeconds", coreNanoSeconds);
        w.WriteEndObject();
        w.WriteStartObject("memory");
        w.WriteString("time", time);
        w.WriteNumber("workingSetBytes", workingSet);
        w.WriteEndObject();
    }

    [LoggerMessage(EventId = 1220, Level = LogLevel.Debug, Message = "Container stats unavailable: {Error}")]
    private partial void LogStatsFailed(string error);
}
