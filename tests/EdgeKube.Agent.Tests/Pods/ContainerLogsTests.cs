using System.Text;
using EdgeKube.Agent.Pods;

namespace EdgeKube.Agent.Tests.Pods;

public class ContainerLogsTests
{
    [Fact]
    public void Cri_framing_is_removed_and_partial_lines_are_joined()
    {
        var records = "2026-01-01T00:00:00.1Z stdout F hello world\n2026-01-01T00:00:00.2Z stderr P part \n2026-01-01T00:00:00.3Z stderr F two\n";
        Assert.Equal("hello world\npart two\n", ContainerLogs.Decode(Encoding.UTF8.GetBytes(records), timestamps: false));
        Assert.StartsWith("2026-01-01T00:00:00.1Z hello world\n", ContainerLogs.Decode(Encoding.UTF8.GetBytes(records), timestamps: true));
    }
}
