using EdgeKube.Agent.Pods;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Pods;

public class BackoffTests
{
    [Fact]
    public void Doubles_from_ten_seconds_to_five_minutes()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var backoff = Backoff.ForCrashLoop(time);
        var delays = new List<double>();
        for (var i = 0; i < 8; i++)
        {
            delays.Add(backoff.Next("k", time.GetUtcNow()).TotalSeconds);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal([10, 20, 40, 80, 160, 300, 300, 300], delays);
    }

    [Fact]
    public void Resets_after_ten_minutes_without_failure()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var backoff = Backoff.ForCrashLoop(time);
        backoff.Next("k", time.GetUtcNow());
        backoff.Next("k", time.GetUtcNow());
        Assert.Equal(TimeSpan.FromSeconds(20), backoff.Current("k"));
        time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.Zero, backoff.Current("k"));
        Assert.Equal(TimeSpan.FromSeconds(10), backoff.Next("k", time.GetUtcNow()));
    }

    [Fact]
    public void In_backoff_until_the_delay_has_passed_since_the_event()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var backoff = Backoff.ForImagePull(time);
        var failedAt = time.GetUtcNow();
        Assert.False(backoff.IsInBackoffSinceUpdate("img"));
        backoff.Next("img", failedAt);
        Assert.True(backoff.IsInBackoffSinceUpdate("img"));
        time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(backoff.IsInBackoffSince("img", failedAt));
        Assert.Equal(TimeSpan.FromSeconds(1), backoff.RemainingSince("img", failedAt));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(backoff.IsInBackoffSince("img", failedAt));
        Assert.False(backoff.IsInBackoffSinceUpdate("img"));
    }
}
