using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Runtime;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Probes;

public enum ProbeKind
{
    Liveness,
    Readiness,
    Startup,
}

/// <summary>What the probes say about one pod's containers, by container name.</summary>
public sealed record ProbeResults(
    IReadOnlyDictionary<string, bool> Ready,
    IReadOnlyDictionary<string, bool> Started,
    IReadOnlyDictionary<string, string> Unhealthy);

/// <summary>
/// kubelet's prober manager: one worker per running container and probe, running exec (CRI ExecSync),
/// httpGet and tcpSocket probes on kubelet's timing (initialDelaySeconds, periodSeconds,
/// timeoutSeconds, successThreshold, failureThreshold). Liveness and readiness wait for the startup
/// probe. Result changes wake the pod's worker.
/// </summary>
public sealed partial class ProbeManager(IContainerRuntime runtime, TimeProvider time, ILogger<ProbeManager> logger) : IDisposable
{
    private readonly ConcurrentDictionary<(string ContainerId, ProbeKind Kind), ProbeWorker> _workers = new();
    private readonly HttpClient _http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero, AllowAutoRedirect = true, MaxAutomaticRedirections = 10 })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Raised with the pod uid when a probe result changes.</summary>
    public event Action<string>? ResultChanged;

    /// <summary>Starts probe workers for the pod's running containers and stops those of containers that are gone.</summary>
    public void Sync(V1Pod pod, ObservedPod observed)
    {
        var wanted = new HashSet<(string, ProbeKind)>();
        foreach (var c in Pods.PodValidation.AllContainers(pod.Spec))
        {
            var latest = observed.Latest(c.Name);
            if (latest is not { IsRunning: true })
            {
                continue;
            }

            var podIp = (pod.Spec.HostNetwork ?? false) ? "127.0.0.1" : observed.Sandboxes.FirstOrDefault(s => s.Id == latest.SandboxId)?.Ip;
            foreach (var (kind, probe) in new[] { (ProbeKind.Startup, c.StartupProbe), (ProbeKind.Liveness, c.LivenessProbe), (ProbeKind.Readiness, c.ReadinessProbe) })
            {
                if (probe is null)
                {
                    continue;
                }

                var key = (latest.Id, kind);
                wanted.Add(key);
                _workers.GetOrAdd(key, _ =>
                {
                    var worker = new ProbeWorker(this, pod.Uid(), pod.Name(), c, latest.Id, kind, probe, podIp, latest.StartedAt ?? time.GetUtcNow());
                    worker.Start();
                    return worker;
                });
            }
        }

        foreach (var (key, worker) in _workers)
        {
            if (worker.PodUid == pod.Uid() && !wanted.Contains(key) && _workers.TryRemove(key, out _))
            {
                worker.Stop();
            }
        }
    }

    public void RemovePod(string podUid)
    {
        foreach (var (key, worker) in _workers)
        {
            if (worker.PodUid == podUid && _workers.TryRemove(key, out _))
            {
                worker.Stop();
            }
        }
    }

    /// <summary>The current results for the pod's latest containers.</summary>
    public ProbeResults Results(V1Pod pod, ObservedPod observed)
    {
        var ready = new Dictionary<string, bool>(StringComparer.Ordinal);
        var started = new Dictionary<string, bool>(StringComparer.Ordinal);
        var unhealthy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in Pods.PodValidation.AllContainers(pod.Spec))
        {
            var latest = observed.Latest(c.Name);
            if (latest is not { IsRunning: true })
            {
                continue;
            }

            if (c.StartupProbe is not null)
            {
                var s = Get(latest.Id, ProbeKind.Startup);
                started[c.Name] = s?.Result == ProbeResult.Success;
                if (s?.Result == ProbeResult.Failure)
                {
                    unhealthy[c.Name] = $"Container {c.Name} failed startup probe, will be restarted";
                }
            }

            if (c.ReadinessProbe is not null)
            {
                ready[c.Name] = Get(latest.Id, ProbeKind.Readiness)?.Result == ProbeResult.Success;
            }

            if (c.LivenessProbe is not null && Get(latest.Id, ProbeKind.Liveness)?.Result == ProbeResult.Failure)
            {
                unhealthy[c.Name] = $"Container {c.Name} failed liveness probe, will be restarted";
            }
        }

        return new ProbeResults(ready, started, unhealthy);
    }

    public void Dispose()
    {
        foreach (var worker in _workers.Values)
        {
            worker.Stop();
        }

        _workers.Clear();
        _http.Dispose();
    }

    private ProbeWorker? Get(string containerId, ProbeKind kind) => _workers.TryGetValue((containerId, kind), out var w) ? w : null;

    private bool StartupSucceeded(string containerId, V1Container container) =>
        container.StartupProbe is null || Get(containerId, ProbeKind.Startup)?.Result == ProbeResult.Success;

    /// <summary>Runs one probe once; returns success and a short message.</summary>
    internal async Task<(bool Success, string Message)> RunOnceAsync(V1Probe probe, V1Container container, string containerId, string? podIp, CancellationToken cancellationToken)
    {
        var timeout = TimeSpan.FromSeconds(probe.TimeoutSeconds ?? 1);
        try
        {
            if (probe.Exec is { } exec)
            {
                var result = await runtime.ExecSyncAsync(containerId, exec.Command?.ToList() ?? [], timeout, cancellationToken).ConfigureAwait(false);
                return (result.ExitCode == 0, result.ExitCode == 0 ? string.Empty : $"command exited with {result.ExitCode}: {result.Stdout.ToStringUtf8()}{result.Stderr.ToStringUtf8()}".Trim());
            }

            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            if (probe.HttpGet is { } http)
            {
                var host = string.IsNullOrEmpty(http.Host) ? podIp : http.Host;
                var port = ResolvePort(http.Port, container);
                var path = http.Path ?? "/";
                var uri = new Uri($"{(http.Scheme ?? "HTTP").ToLowerInvariant()}://{FormatHost(host)}:{port}{(path.StartsWith('/') ? path : "/" + path)}");
                using var request = new HttpRequestMessage(HttpMethod.Get, uri);
                request.Headers.ConnectionClose = true;
                request.Headers.UserAgent.ParseAdd("kube-probe/1.32");
                foreach (var h in http.HttpHeaders ?? [])
                {
                    request.Headers.TryAddWithoutValidation(h.Name, h.Value);
                }

                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
                var code = (int)response.StatusCode;
                return code is >= 200 and < 400 ? (true, "") : (false, $"HTTP probe failed with statuscode: {code}");
            }

            if (probe.TcpSocket is { } tcp)
            {
                var host = string.IsNullOrEmpty(tcp.Host) ? podIp : tcp.Host;
                using var client = new TcpClient();
                await client.ConnectAsync(host ?? "127.0.0.1", ResolvePort(tcp.Port, container), cts.Token).ConfigureAwait(false);
                return (true, string.Empty);
            }

            return (false, "probe has no handler");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, $"probe timed out after {timeout.TotalSeconds}s");
        }
        catch (Exception e) when (e is RuntimeException or HttpRequestException or SocketException or IOException or ArgumentException or UriFormatException)
        {
            return (false, e.Message);
        }
    }

    private static string FormatHost(string? host) => host is null ? "127.0.0.1" : host.Contains(':') ? $"[{host}]" : host;

    private static int ResolvePort(IntOrString port, V1Container container)
    {
        if (int.TryParse(port.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
        {
            return n;
        }

        return container.Ports?.FirstOrDefault(p => p.Name == port.Value)?.ContainerPort
            ?? throw new ArgumentException($"named port {port.Value} not found in the container's ports");
    }

    internal void OnResultChanged(ProbeWorker worker, ProbeResult result, string message)
    {
        LogProbeResult(worker.PodName, worker.Container.Name, worker.Kind.ToString(), result.ToString(), message);
        ResultChanged?.Invoke(worker.PodUid);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Probe {Kind} of {Pod}/{Container} is now {Result} {Message}")]
    private partial void LogProbeResult(string pod, string container, string kind, string result, string message);

    internal enum ProbeResult
    {
        Unknown,
        Success,
        Failure,
    }

    /// <summary>One probe of one container instance; lives as long as that container runs.</summary>
    internal sealed class ProbeWorker(ProbeManager manager, string podUid, string podName, V1Container container, string containerId, ProbeKind kind, V1Probe probe, string? podIp, DateTimeOffset startedAt)
    {
        private readonly CancellationTokenSource _stop = new();
        private int _successes;
        private int _failures;

        public string PodUid => podUid;

        public string PodName => podName;

        public V1Container Container => container;

        public ProbeKind Kind => kind;

        /// <summary>Readiness starts as failure, liveness as success, startup as unknown, as in kubelet.</summary>
        public ProbeResult Result { get; private set; } = kind switch
        {
            ProbeKind.Readiness => ProbeResult.Failure,
            ProbeKind.Liveness => ProbeResult.Success,
            _ => ProbeResult.Unknown,
        };

        public void Start() => _ = Task.Run(() => RunAsync(_stop.Token));

        public void Stop()
        {
            _stop.Cancel();
        }

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            var time = manager.Time;
            try
            {
                var initial = TimeSpan.FromSeconds(probe.InitialDelaySeconds ?? 0) - (time.GetUtcNow() - startedAt);
                if (initial > TimeSpan.Zero)
                {
                    await Task.Delay(initial, time, cancellationToken).ConfigureAwait(false);
                }

                var period = TimeSpan.FromSeconds(probe.PeriodSeconds ?? 10);
                while (!cancellationToken.IsCancellationRequested)
                {
                    if (kind == ProbeKind.Startup && Result == ProbeResult.Success)
                    {
                        return; // kubelet stops the startup probe once it has succeeded
                    }

                    if (kind != ProbeKind.Startup && !manager.StartupSucceeded(containerId, container))
                    {
                        await Task.Delay(period, time, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    var (success, message) = await manager.RunOnceAsync(probe, container, containerId, podIp, cancellationToken).ConfigureAwait(false);
                    Record(success, message);
                    if (kind != ProbeKind.Readiness && Result == ProbeResult.Failure)
                    {
                        return; // the container will be restarted; a new worker probes the new one
                    }

                    await Task.Delay(period, time, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private void Record(bool success, string message)
        {
            var before = Result;
            if (success)
            {
                _failures = 0;
                _successes++;
                if (_successes >= (probe.SuccessThreshold ?? 1))
                {
                    Result = ProbeResult.Success;
                }
            }
            else
            {
                _successes = 0;
                _failures++;
                if (_failures >= (probe.FailureThreshold ?? 3))
                {
                    Result = ProbeResult.Failure;
                }
            }

            if (Result != before)
            {
                manager.OnResultChanged(this, Result, message);
            }
        }
    }

    internal TimeProvider Time => time;
}
