using System.Globalization;
using Microsoft.Extensions.Hosting.Systemd;

namespace EdgeKube.Hosting;

/// <summary>
/// systemd's notify protocol for a <c>Type=notify</c> unit with <c>WatchdogSec=</c>: READY=1 once the
/// service really works, WATCHDOG=1 pings while its main loop turns, STOPPING=1 on shutdown.
/// The datagrams go through Microsoft.Extensions.Hosting.Systemd's <see cref="SystemdNotifier"/>
/// (NOTIFY_SOCKET, abstract sockets included); the library has no watchdog, so the ping interval
/// (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises) and WATCHDOG_PID are read here.
/// Without NOTIFY_SOCKET every call does nothing. Shared by the agent and the master (linked source).
/// </summary>
internal sealed class ServiceNotifier
{
    private readonly ISystemdNotifier _notifier;
    private readonly TimeProvider _time;

    public ServiceNotifier(ISystemdNotifier notifier, TimeProvider time, string? watchdogUsec, string? watchdogPid, int processId)
    {
        _notifier = notifier;
        _time = time;
        WatchdogInterval = ParseWatchdog(watchdogUsec, watchdogPid, processId);
    }

    /// <summary>From the process environment, as systemd starts the service.</summary>
    public static ServiceNotifier FromEnvironment(TimeProvider time) =>
        new(new SystemdNotifier(), time, Environment.GetEnvironmentVariable("WATCHDOG_USEC"),
            Environment.GetEnvironmentVariable("WATCHDOG_PID"), Environment.ProcessId);

    /// <summary>True when systemd (or a test) listens on NOTIFY_SOCKET.</summary>
    public bool IsEnabled => _notifier.IsEnabled;

    /// <summary>How often to ping: half the watchdog timeout; null when the watchdog is off or meant for another process.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>Pings sent so far (for logs and tests).</summary>
    public long WatchdogPings { get; private set; }

    public void Ready(string status) => Send("READY=1\nSTATUS=" + status);

    public void Status(string status) => Send("STATUS=" + status);

    public void Stopping() => Send("STOPPING=1");

    /// <summary>
    /// Sends WATCHDOG=1 every <see cref="WatchdogInterval"/> for as long as <paramref name="healthy"/>
    /// says the main loop still turns. A hung loop stops the pings and systemd restarts the service.
    /// Returns at once when there is no watchdog.
    /// </summary>
    public async Task RunWatchdogAsync(Func<bool> healthy, Action<string>? onSkipped, CancellationToken cancellationToken)
    {
        if (WatchdogInterval is not { } interval || !IsEnabled)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            do
            {
                if (healthy())
                {
                    Send("WATCHDOG=1");
                    WatchdogPings++;
                }
                else
                {
                    onSkipped?.Invoke("main loop has not turned recently; watchdog ping withheld");
                }
            }
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>WATCHDOG_USEC (microseconds) halved; null when unset, invalid, zero, or WATCHDOG_PID names another process.</summary>
    public static TimeSpan? ParseWatchdog(string? watchdogUsec, string? watchdogPid, int processId)
    {
        if (!long.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out var usec) || usec <= 0)
        {
            return null;
        }

        if (!string.IsNullOrEmpty(watchdogPid)
            && (!int.TryParse(watchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid != processId))
        {
            return null;
        }

        return TimeSpan.FromMicroseconds(usec / 2.0);
    }

    private void Send(string state)
    {
        if (!_notifier.IsEnabled)
        {
            return;
        }

        try
        {
            _notifier.Notify(new ServiceState(state));
        }
        catch (System.Net.Sockets.SocketException)
        {
            // A notify socket that went away (systemd re-executing) must not stop the service.
        }
    }
}
