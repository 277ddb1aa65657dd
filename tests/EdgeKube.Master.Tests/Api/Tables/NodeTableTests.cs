using System.Text.Json.Nodes;
using static EdgeKube.Master.Tests.Api.Tables.TableKit;

namespace EdgeKube.Master.Tests.Api.Tables;

public class NodeTableTests
{
    [Theory]
    [InlineData("""[{"type": "Ready", "status": "True"}]""", false, "Ready")]
    [InlineData("""[{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}]""", false, "NotReady")]
    [InlineData("""[{"type": "Ready", "status": "Unknown"}]""", false, "NotReady")]
    [InlineData("""[]""", false, "Unknown")]
    [InlineData("""[{"type": "Ready", "status": "True"}]""", true, "Ready,SchedulingDisabled")]
    [InlineData("""[]""", true, "Unknown,SchedulingDisabled")]
    public void Status(string conditions, bool unschedulable, string expected)
    {
        var node = Node(spec: $$"""{"unschedulable": {{(unschedulable ? "true" : "false")}}}""", conditions: conditions);

        Assert.Equal(expected, Cells("nodes", node)[1]);
    }

    [Fact]
    public void Roles_come_from_role_labels_sorted()
    {
        var node = Node(labels: """
            {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
             "kubernetes.io/role": "edge", "node-role.kubernetes.io/": "", "kubernetes.io/hostname": "pi-1"}
            """);

        Assert.Equal("control-plane,edge,worker", Cells("nodes", node)[2]);
    }

    [Fact]
    public void No_roles_is_none()
    {
        var node = Node(labels: """{"kubernetes.io/hostname": "pi-1", "kubernetes.io/role": ""}""");

        Assert.Equal("<none>", Cells("nodes", node)[2]);
    }

    [Fact]
    public void Narrow_cells()
    {
        Assert.Equal(["pi-1", "Ready", "<none>", "2d3h", "v1.32.0-edgekube"], NarrowCells("nodes", Node()));
    }

    [Fact]
    public void Wide_cells()
    {
        var node = Node(status: """
            "addresses": [{"type": "Hostname", "address": "pi-1"}, {"type": "InternalIP", "address": "192.168.1.21"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0-edgekube", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.6.51+rpt-rpi-v8", "containerRuntimeVersion": "containerd://1.7.24"}
            """);

        Assert.Equal(
            ["192.168.1.21", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.6.51+rpt-rpi-v8", "containerd://1.7.24"],
            Cells("nodes", node)[5..]);
    }

    [Fact]
    public void Wide_cells_of_a_node_that_reported_nothing()
    {
        var node = Node(status: "\"addresses\": [{\"type\": \"ExternalIP\", \"address\": \"203.0.113.9\"}]");

        Assert.Equal(["<none>", "203.0.113.9", "<unknown>", "<unknown>", "<unknown>"], Cells("nodes", node)[5..]);
        Assert.Equal("", Cells("nodes", node)[4]);
    }

    [Fact]
    public void Columns_and_priorities()
    {
        var columns = EdgeKube.Master.Api.Tables.TableWriter.ColumnDefinitions("nodes");

        Assert.Equal(
            ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
            columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], columns.Select(c => c!["priority"]!.GetValue<int>()));
    }

    private static JsonObject Node(
        string spec = "{}",
        string conditions = """[{"type": "Ready", "status": "True"}]""",
        string labels = "{}",
        string status = """ "nodeInfo": {"kubeletVersion": "v1.32.0-edgekube"} """) =>
        Parse($$"""
            {"metadata": {"name": "pi-1", "creationTimestamp": "{{Ago(TimeSpan.FromHours(51))}}", "labels": {{labels}}},
             "spec": {{spec}},
             "status": {"conditions": {{conditions}}, {{status}}} }
            """);
}
