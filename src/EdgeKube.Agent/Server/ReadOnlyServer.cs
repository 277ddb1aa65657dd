using EdgeKube.Agent.Json;
using System.Globalization;
using System.Net;
using System.Text;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Server;

/// <summary>
/// kubelet's read-only port (<c>--read-only-port</c>, default 10255) on 127.0.0.1 unless told otherwise:
/// <c>/healthz</c>, <c>/pods</c> (a v1 PodList with current statuses, rejected manifests included as
/// Failed pods) and <c>/metrics</c> (Prometheus text).
/// </summary>
public sealed partial class ReadOnlyServer(
    string address,
    int port,
    DesiredPodStore desired,
    StatusManager statuses,
    RuntimeObserver observer,
    TimeProvider time,
    ILogger<ReadOnlyServer> logger) : IDisposable
{
    private HttpEndpoint? _endpoint;

    /// <summary>The node's status and board conditions, for /metrics.</summary>
    public Node.NodeMonitor? Monitor { get; init; }

    /// <summary>Node and pod usage, for /metrics and /stats/summary.</summary>
    public Node.UsageCollector? Usage { get; init; }

    /// <summary>Anything else that writes gauges to /metrics (sensors, LEDs).</summary>
    public IReadOnlyList<Action<StringBuilder>> MetricWriters { get; init; } = [];
    private readonly DateTimeOffset _started = time.GetUtcNow();

    /// <summary>
    /// Serves until cancelled. A port that cannot be bound (taken by another process, or an address the
    /// board does not have yet) gets one warning naming the setting, and the agent keeps trying every
    /// <see cref="RetryPeriod"/> while everything else runs on: the pods do not depend on this endpoint.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        // Validated at start (--address): an IP, 0.0.0.0 for every address.
        var ip = IPAddress.Parse(address);
        string? lastError = null;
        while (true)
        {
            try
            {
                _endpoint = HttpEndpoint.Listen(ip, port, Serve);
                break;
            }
            catch (System.Net.Sockets.SocketException e)
            {
                // Said once, and again only when the reason changes.
                if (e.Message != lastError)
                {
                    lastError = e.Message;
                    LogCannotListen(address, port, e.Message, RetryPeriod.TotalSeconds);
                }
            }

            try
            {
                await Task.Delay(RetryPeriod, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        LogListening(address, port);
        await _endpoint.ServeAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>How often a port that could not be bound is tried again.</summary>
    public TimeSpan RetryPeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Answers one GET or HEAD request.</summary>
    public HttpReply Serve(string path) => path switch
    {
        "/healthz" => Healthz(),
        "/pods" or "/pods/" => new(200, "application/json", KubeJson.Serialize(PodList())),
        "/metrics" or "/metrics/resource" => new(200, "text/plain; version=0.0.4", Metrics()),
        "/stats/summary" => new(200, "application/json", Node.UsageCollector.Summary(Monitor?.Current?.Metadata.Name ?? string.Empty, Usage?.Last)),
        _ => new(404, "text/plain", "404 page not found\n"),
    };

    private HttpReply Healthz() =>
        observer.IsHealthy(TimeSpan.FromSeconds(30))
            ? new(200, "text/plain", "ok")
            : new(500, "text/plain", $"runtime unhealthy: {observer.LastError ?? "no successful relist yet"}\n");

    /// <summary>Every pod the agent knows, with its current status; rejected manifests as Failed pods.</summary>
    public V1PodList PodList()
    {
        var items = new List<V1Pod>();
        foreach (var d in desired.All().OrderBy(d => d.Key, StringComparer.Ordinal))
        {
            var pod = KubeJson.Clone(d.Pod);
            // Not yet through its first worker turn: kubelet's initial status, every container waiting.
            pod.Status = statuses.Get(d.Uid) ?? PodStatusComputer.Compute(d.Pod, ObservedPod.Empty(d.Uid), new PodSyncNotes(), null, null, time.GetUtcNow());
            items.Add(pod);
        }

        foreach (var r in desired.Rejected())
        {
            items.Add(new V1Pod
            {
                ApiVersion = "v1",
                Kind = "Pod",
                Metadata = new V1ObjectMeta
                {
                    Name = r.Name,
                    NamespaceProperty = r.Namespace,
                    Annotations = new Dictionary<string, string> { ["kubernetes.io/config.source"] = r.Source, ["edgekube.io/manifest"] = r.Origin },
                },
                Status = new V1PodStatus { Phase = "Failed", Reason = "InvalidManifest", Message = r.Reason },
            });
        }

        return new V1PodList { ApiVersion = "v1", Kind = "PodList", Metadata = new V1ListMeta(), Items = items };
    }

    private string Metrics()
    {
        var sb = new StringBuilder();
        var pods = desired.All();
        var byPhase = pods.GroupBy(p => statuses.Get(p.Uid)?.Phase ?? "Pending").ToDictionary(g => g.Key, g => g.Count());
        sb.AppendLine("# HELP edgekube_agent_pods Desired pods by phase.");
        sb.AppendLine("# TYPE edgekube_agent_pods gauge");
        foreach (var phase in new[] { "Pending", "Running", "Succeeded", "Failed", "Unknown" })
        {
            sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_pods{{phase=\"{phase}\"}} {byPhase.GetValueOrDefault(phase)}\n");
        }

        var containers = pods.Select(p => statuses.Get(p.Uid)).SelectMany(s => s?.ContainerStatuses ?? []).ToList();
        sb.AppendLine("# HELP edgekube_agent_containers Containers of desired pods by state.");
        sb.AppendLine("# TYPE edgekube_agent_containers gauge");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_containers{{state=\"running\"}} {containers.Count(c => c.State?.Running is not null)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_containers{{state=\"waiting\"}} {containers.Count(c => c.State?.Waiting is not null)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_containers{{state=\"terminated\"}} {containers.Count(c => c.State?.Terminated is not null)}\n");
        sb.AppendLine("# HELP edgekube_agent_container_restarts_total Container restarts of desired pods.");
        sb.AppendLine("# TYPE edgekube_agent_container_restarts_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_container_restarts_total {containers.Sum(c => c.RestartCount)}\n");
        sb.AppendLine("# HELP edgekube_agent_rejected_manifests Manifests rejected as invalid.");
        sb.AppendLine("# TYPE edgekube_agent_rejected_manifests gauge");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_rejected_manifests {desired.Rejected().Count}\n");
        sb.AppendLine("# HELP edgekube_agent_runtime_up Whether the container runtime answered the last relist.");
        sb.AppendLine("# TYPE edgekube_agent_runtime_up gauge");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_runtime_up {(observer.LastError is null && observer.LastSuccess is not null ? 1 : 0)}\n");
        sb.AppendLine("# HELP edgekube_agent_relists_total Successful runtime relists.");
        sb.AppendLine("# TYPE edgekube_agent_relists_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_relists_total {observer.RelistCount}\n");
        sb.AppendLine("# HELP edgekube_agent_status_updates_total Pod status changes computed.");
        sb.AppendLine("# TYPE edgekube_agent_status_updates_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"edgekube_agent_status_updates_total {statuses.Updates}\n");
        if (Monitor?.Current is { } node)
        {
            sb.AppendLine("# HELP edgekube_node_condition Node conditions as the agent reports them (1 for the current status).");
            sb.AppendLine("# TYPE edgekube_node_condition gauge");
            foreach (var c in node.Status.Conditions)
            {
                foreach (var s in new[] { "True", "False", "Unknown" })
                {
                    sb.Append(CultureInfo.InvariantCulture, $"edgekube_node_condition{{condition=\"{c.Type}\",status=\"{s.ToLowerInvariant()}\"}} {(c.Status == s ? 1 : 0)}\n");
                }
            }
        }

        if (Monitor?.Readings is { } r)
        {
            if (r.CpuCelsius is { } celsius)
            {
                sb.AppendLine("# HELP edgekube_node_cpu_temperature_celsius CPU temperature from the thermal zone.");
                sb.AppendLine("# TYPE edgekube_node_cpu_temperature_celsius gauge");
                sb.Append(CultureInfo.InvariantCulture, $"edgekube_node_cpu_temperature_celsius {celsius:0.###}\n");
            }

            if (r.Throttled is { } flags)
            {
                sb.AppendLine("# HELP edgekube_node_firmware_throttled The Raspberry Pi firmware's get_throttled flags.");
                sb.AppendLine("# TYPE edgekube_node_firmware_throttled gauge");
                sb.Append(CultureInfo.InvariantCulture, $"edgekube_node_firmware_throttled {flags}\n");
            }
        }

        Node.UsageCollector.WriteMetrics(sb, Usage?.Last);
        foreach (var writer in MetricWriters)
        {
            writer(sb);
        }

        RuntimeMetrics.Write(sb);
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        sb.AppendLine("# HELP process_resident_memory_bytes Resident memory size in bytes.");
        sb.AppendLine("# TYPE process_resident_memory_bytes gauge");
        sb.Append(CultureInfo.InvariantCulture, $"process_resident_memory_bytes {process.WorkingSet64}\n");
        sb.AppendLine("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.");
        sb.AppendLine("# TYPE process_cpu_seconds_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"process_cpu_seconds_total {process.TotalProcessorTime.TotalSeconds:0.###}\n");
        sb.AppendLine("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.");
        sb.AppendLine("# TYPE process_start_time_seconds gauge");
        sb.Append(CultureInfo.InvariantCulture, $"process_start_time_seconds {_started.ToUnixTimeSeconds()}\n");
        return sb.ToString();
    }

    public void Dispose()
    {
        _endpoint?.Dispose();
    }

    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Read-only endpoint on http://{Address}:{Port} (/healthz, /pods, /metrics)")]
    private partial void LogListening(string address, int port);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "Cannot serve the read-only endpoint on {Address}:{Port} (--read-only-port, --address): {Error}; the pods run on, trying again every {RetrySeconds} s")]
    private partial void LogCannotListen(string address, int port, string error, double retrySeconds);
}
