using EdgeKube.Protocol;

namespace EdgeKube.Master.Tests.Protocol;

/// <summary>Go's time.ParseDuration, case by case (the examples of its documentation and tests).</summary>
public sealed class GoDurationTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("30s", 30_000)]
    [InlineData("2m", 120_000)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData(".5s", 500)]
    [InlineData("1.s", 1_000)]
    [InlineData("300ms", 300)]
    [InlineData("-2s", -2_000)]
    [InlineData("+2s", 2_000)]
    [InlineData("1h2m3s4ms", 3_723_004)]
    [InlineData("2500us", 2.5)]
    [InlineData("2500\u00b5s", 2.5)]
    [InlineData("1000000ns", 1)]
    public void Parses_what_go_parses(string text, double milliseconds)
    {
        Assert.True(GoDuration.TryParse(text, out var d));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), d);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("30")]
    [InlineData("s")]
    [InlineData(".s")]
    [InlineData("3x")]
    [InlineData("30 s")]
    [InlineData("1d")]
    [InlineData("banana")]
    [InlineData("-")]
    [InlineData("3000000h")]
    public void Refuses_what_go_refuses(string? text) => Assert.False(GoDuration.TryParse(text, out _));
}
