using EdgeKube.Master.Api.Tables;

namespace EdgeKube.Master.Tests.Api.Tables;

public class HumanDurationTests
{
    // Boundaries of apimachinery's duration.HumanDuration.
    [Theory]
    [InlineData(-3_000, "<invalid>")]
    [InlineData(-2_000, "<invalid>")]
    [InlineData(-1_500, "0s")]
    [InlineData(-999, "0s")]
    [InlineData(0, "0s")]
    [InlineData(999, "0s")]
    [InlineData(5_000, "5s")]
    [InlineData(119_999, "119s")]
    [InlineData(120_000, "2m")]
    [InlineData(200_000, "3m20s")]
    [InlineData(599_000, "9m59s")]
    [InlineData(600_000, "10m")]
    [InlineData(610_000, "10m")]
    [InlineData(179 * 60_000, "179m")]
    [InlineData(180 * 60_000, "3h")]
    [InlineData(200 * 60_000, "3h20m")]
    [InlineData((7 * 60 + 59) * 60_000, "7h59m")]
    [InlineData(8 * 3_600_000, "8h")]
    [InlineData(8 * 3_600_000 + 30 * 60_000, "8h")]
    [InlineData(47 * 3_600_000, "47h")]
    [InlineData(48 * 3_600_000, "2d")]
    [InlineData(51 * 3_600_000, "2d3h")]
    [InlineData((7 * 24 + 23) * 3_600_000L, "7d23h")]
    [InlineData(8 * 24 * 3_600_000L, "8d")]
    [InlineData(8 * 24 * 3_600_000L + 5 * 3_600_000L, "8d")]
    [InlineData(729 * 24 * 3_600_000L, "729d")]
    [InlineData(730 * 24 * 3_600_000L, "2y")]
    [InlineData(735 * 24 * 3_600_000L, "2y5d")]
    [InlineData(3 * 365 * 24 * 3_600_000L, "3y")]
    [InlineData(8 * 365 * 24 * 3_600_000L, "8y")]
    [InlineData(8 * 365 * 24 * 3_600_000L + 100 * 24 * 3_600_000L, "8y")]
    public void Formats_like_kubectl(long milliseconds, string expected) =>
        Assert.Equal(expected, HumanDuration.Format(TimeSpan.FromMilliseconds(milliseconds)));

    [Fact]
    public void Since_an_unset_time_is_unknown() =>
        Assert.Equal("<unknown>", HumanDuration.Since(null, TableKit.Now));

    [Fact]
    public void Since_counts_to_now() =>
        Assert.Equal("3m20s", HumanDuration.Since(TableKit.Now.AddSeconds(-200), TableKit.Now));
}
