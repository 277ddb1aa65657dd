using EdgeKube.Agent.Json;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Protocol;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Node;

/// <summary>
/// Keeps the node current at the master: the node as <see cref="NodeMonitor"/> computes it, published
/// retained on change only (and again on every connect, and when the master asks because its copy is
/// not the one the lease names); and the lease, renewed every quarter of <see cref="LeaseDuration"/>
/// (kubelet's rule), a few dozen bytes with the digest of the last status published.
/// </summary>
/// <remarks>
/// While the node's MQTT session is open, the master counts the session as proof of life (the broker's
/// keepalive and the will tell it at once when the node is gone, and the agent takes its link down when
/// its main loop hangs), so the lease can be long: it is the backstop for what the session cannot show,
/// and it carries the status digest in place of kubelet's periodic full status report.
/// </remarks>
public sealed partial class NodeReporter(MqttLink link, NodeMonitor monitor, string nodeName, TimeProvider time, ILogger<NodeReporter> logger)
{
    private readonly SemaphoreSlim _publish = new(1, 1);
    private string? _lastJson;
    private string? _lastDigest;

    /// <summary>How long the master may hold the lease without a renewal while the session is open.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>The lease is renewed this often: a quarter of its duration, as kubelet does.</summary>
    public TimeSpan RenewInterval => LeaseDuration / 4;

    /// <summary>The digest of the status last published (what the lease carries); null before the first.</summary>
    public string? LastDigest => _lastDigest;

    /// <summary>Reporting starts once this completes, or after <see cref="MaxReportDelay"/>.</summary>
    public Task ReadyToReport { get; init; } = Task.CompletedTask;

    public static readonly TimeSpan MaxReportDelay = TimeSpan.FromSeconds(10);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ReadyToReport.WaitAsync(MaxReportDelay, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogReportDelayed(MaxReportDelay.TotalSeconds);
        }

        // The node as it is now, not as sampled before the wait.
        await monitor.SampleAsync().ConfigureAwait(false);

        link.Connected += async () =>
        {
            // Republished on every connect, with a lease at once: a master whose broker lost the retained
            // lease (a restart) learns the duration now, not a renewal later.
            _lastJson = null;
            if (monitor.Current is { } node)
            {
                await PublishAsync(node, cancellationToken).ConfigureAwait(false);
            }

            await RenewAsync(cancellationToken).ConfigureAwait(false);
        };
        link.MessageReceived += message =>
        {
            if (message.Topic != link.Topics.Rpc(nodeName, Topics.ResendStatus) || monitor.Current is not { } node)
            {
                return Task.CompletedTask;
            }

            LogResend(nodeName);
            _lastJson = null;
            return PublishAsync(node, cancellationToken);
        };
        monitor.Changed += node => PublishAsync(node, cancellationToken);
        if (monitor.Current is { } first)
        {
            await PublishAsync(first, cancellationToken).ConfigureAwait(false);
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            await RenewAsync(cancellationToken).ConfigureAwait(false);
            await Task.Delay(RenewInterval, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Publishes the lease now (retained, QoS 0): its duration and the digest of the last status.</summary>
    public Task<bool> RenewAsync(CancellationToken cancellationToken)
    {
        var lease = new Lease((int)Math.Ceiling(LeaseDuration.TotalSeconds), _lastDigest);
        return link.PublishHeartbeatAsync(link.Topics.Lease(nodeName), JsonSerializer.SerializeToUtf8Bytes(lease, ProtocolJson.Default.Lease), cancellationToken);
    }

    /// <summary>Publishes the node when it differs from the last one published.</summary>
    public async Task PublishAsync(V1Node node, CancellationToken cancellationToken)
    {
        await _publish.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var json = KubeJson.Serialize(node);
            if (json == _lastJson)
            {
                return;
            }

            _lastJson = json;
            var payload = Encoding.UTF8.GetBytes(json);
            var first = _lastDigest is null;
            _lastDigest = StatusDigest.Of(payload);
            var ready = node.Status.Conditions.First(c => c.Type == "Ready");
            LogReported(nodeName, ready.Status, ready.Reason);
            await link.PublishRetainedAsync(link.Topics.NodeStatus(nodeName), payload, cancellationToken).ConfigureAwait(false);
            if (first)
            {
                // The lease sent on connect may have gone out before the first status: name it now, not a renewal later.
                await RenewAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _publish.Release();
        }
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Not every sensor has been read after {Seconds} s; reporting the node without waiting longer")]
    private partial void LogReportDelayed(double seconds);

    [LoggerMessage(EventId = 1200, Level = LogLevel.Debug, Message = "Node {Node} status published: Ready={Ready} ({Reason})")]
    private partial void LogReported(string node, string ready, string reason);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Information, Message = "Node {Node}: the master's copy of the status is not the last one published; publishing it again")]
    private partial void LogResend(string node);
}

internal static class DateTimeExtensions
{
    public static DateTime TruncateToSecondsUtc(this DateTime time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
