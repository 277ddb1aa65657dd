using EdgeKube.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Hosting;

/// <summary>
/// Tells systemd how the agent is doing (<c>Type=notify</c>, <c>WatchdogSec=</c> in
/// systemd/edgekube-agent.service): STATUS while it waits for containerd, READY=1 once it has
/// connected and started its loops, WATCHDOG=1 while its main loop turns, STOPPING=1 on shutdown.
/// </summary>
internal sealed partial class SystemdNotifyService(Agent agent, AgentOptions options, ServiceNotifier notifier, IHostApplicationLifetime lifetime, ILogger<SystemdNotifyService> logger)
    : BackgroundService
{
    /// <summary>How long the main loop may go without a turn before pings stop (<see cref="Agent.HangTolerance"/>).</summary>
    public TimeSpan Tolerance => Agent.HangTolerance(options);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (notifier.IsEnabled)
        {
            // Lives as long as the host: STOPPING=1 the moment a shutdown begins (SIGTERM from systemctl stop).
            lifetime.ApplicationStopping.Register(notifier.Stopping);
        }

        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!notifier.IsEnabled)
        {
            return;
        }

        notifier.Status("waiting for the container runtime at " + options.ContainerdSocket);
        if (notifier.WatchdogInterval is { } interval)
        {
            LogWatchdog(interval.TotalSeconds, Tolerance.TotalSeconds);
        }

        var watchdog = notifier.RunWatchdogAsync(() => agent.IsAlive(Tolerance), LogPingWithheld, stoppingToken);
        try
        {
            await agent.Started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            notifier.Ready("running node " + options.NodeName);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await watchdog.ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 950, Level = LogLevel.Information, Message = "systemd watchdog: ping every {Seconds:0.#} s while the main loop turns (tolerance {Tolerance:0} s)")]
    private partial void LogWatchdog(double seconds, double tolerance);

    [LoggerMessage(EventId = 951, Level = LogLevel.Warning, Message = "systemd watchdog: {Reason}")]
    private partial void LogPingWithheld(string reason);
}
