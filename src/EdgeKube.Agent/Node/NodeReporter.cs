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
/// retained on change only (and again on every connect); and the lease, a few bytes every
/// <see cref="LeasePeriod"/>, that tells the master the node is alive.
/// </summary>
public sealed partial class NodeReporter(MqttLink link, NodeMonitor monitor, string nodeName, TimeProvider time, ILogger<NodeReporter> logger)
{
    private readonly SemaphoreSlim _publish = new(1, 1);
    private string? _lastJson;

    public TimeSpan LeasePeriod { get; init; } = TimeSpan.FromSeconds(10);

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

        link.Connected += () =>
        {
            _lastJson = null; // republish on every connect
            return monitor.Current is { } node ? PublishAsync(node, cancellationToken) : Task.CompletedTask;
        };
        monitor.Changed += node => PublishAsync(node, cancellationToken);
        if (monitor.Current is { } first)
        {
            await PublishAsync(first, cancellationToken).ConfigureAwait(false);
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            var lease = new Lease(time.GetUtcNow(), (int)(LeasePeriod.TotalSeconds * 4));
            await link.PublishAsync(link.Topics.Lease(nodeName), JsonSerializer.SerializeToUtf8Bytes(lease, ProtocolJson.Default.Lease), cancellationToken).ConfigureAwait(false);
            await Task.Delay(LeasePeriod, time, cancellationToken).ConfigureAwait(false);
        }
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
            var ready = node.Status.Conditions.First(c => c.Type == "Ready");
            LogReported(nodeName, ready.Status, ready.Reason);
            await link.PublishRetainedAsync(link.Topics.NodeStatus(nodeName), Encoding.UTF8.GetBytes(json), cancellationToken).ConfigureAwait(false);
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
}

internal static class DateTimeExtensions
{
    public static DateTime TruncateToSecondsUtc(this DateTime time) =>
        new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc);
}
