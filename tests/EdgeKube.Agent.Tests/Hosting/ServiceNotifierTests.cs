using EdgeKube.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Hosting;

public sealed class ServiceNotifierTests
{
    private sealed class RecordingNotifier : ISystemdNotifier
    {
        public List<string> Sent { get; } = [];

        public bool IsEnabled => true;

        public void Notify(ServiceState state)
        {
            lock (Sent)
            {
                Sent.Add(state.ToString());
            }
        }
    }

    [Theory]
    [InlineData("30000000", null, 15.0)]
    [InlineData("30000000", "4242", 15.0)]
    [InlineData("30000000", "1", null)]
    [InlineData("0", null, null)]
    [InlineData("abc", null, null)]
    [InlineData(null, null, null)]
    public void Watchdog_interval_is_half_of_WATCHDOG_USEC_for_this_process_only(string? usec, string? pid, double? seconds)
    {
        Assert.Equal(seconds is { } s ? TimeSpan.FromSeconds(s) : null, ServiceNotifier.ParseWatchdog(usec, pid, 4242));
    }

    [Fact]
    public async Task A_hung_main_loop_stops_the_pings_and_a_turning_one_restarts_them()
    {
        var time = new FakeTimeProvider();
        var recorder = new RecordingNotifier();
        var notifier = new ServiceNotifier(recorder, time, "2000000", null, 1);
        var healthy = true;
        var skipped = 0;
        using var cts = new CancellationTokenSource();
        var run = notifier.RunWatchdogAsync(() => healthy, _ => Interlocked.Increment(ref skipped), cts.Token);

        time.Advance(TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(3, notifier.WatchdogPings);

        healthy = false;
        time.Advance(TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(3, notifier.WatchdogPings);
        Assert.Equal(2, skipped);

        healthy = true;
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(4, notifier.WatchdogPings);

        await cts.CancelAsync();
        await run;
        Assert.Equal(4, recorder.Sent.Count(m => m == "WATCHDOG=1"));
    }

    [Fact]
    public void Ready_carries_a_status_line()
    {
        var recorder = new RecordingNotifier();
        var notifier = new ServiceNotifier(recorder, TimeProvider.System, null, null, 1);
        notifier.Ready("running node n1");
        notifier.Stopping();
        Assert.Equal(["READY=1\nSTATUS=running node n1", "STOPPING=1"], recorder.Sent);
    }
}
