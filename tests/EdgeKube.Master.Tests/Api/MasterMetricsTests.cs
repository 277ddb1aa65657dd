using System.Text;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;

namespace EdgeKube.Master.Tests.Api;

/// <summary>The master's /metrics text: families, labels, escaping, and node data that is garbage.</summary>
public sealed class MasterMetricsTests
{
    private static JsonObject Node(string name, string ready, string? sensors) => new()
    {
        ["metadata"] = new JsonObject { ["name"] = name, ["annotations"] = sensors is null ? new JsonObject() : new JsonObject { ["edgekube.io/sensors"] = sensors } },
        ["status"] = new JsonObject
        {
            ["conditions"] = new JsonArray(
                new JsonObject { ["type"] = "Ready", ["status"] = ready },
                new JsonObject { ["type"] = "ThermalThrottling", ["status"] = "False" }),
        },
    };

    private static JsonObject Pod(string? phase) => new() { ["metadata"] = new JsonObject { ["name"] = "p" }, ["status"] = phase is null ? new JsonObject() : new JsonObject { ["phase"] = phase } };

    [Fact]
    public void Nodes_pods_conditions_and_sensor_readings_are_gauges_with_their_labels()
    {
        var sensors = """
            [{"name":"air","type":"bme280","readings":[{"quantity":"temperature","value":21.5,"unit":"°C"},{"quantity":"pressure","value":1013.25,"unit":"hPa"}],"time":"2026-01-01T00:00:10Z"},
             {"name":"door","type":"gpio-input","readings":[],"error":"no \"line\"\nhere","time":"2026-01-01T00:00:11Z"}]
            """;
        var text = new StringBuilder();
        MasterMetrics.Write(text, [Node("pi-b", "False", "not json"), Node("pi-a", "True", sensors), Node("pi-c", "Unknown", null)],
            [Pod("Running"), Pod("Running"), Pod(null), Pod("Failed")], connected: true);
        var lines = text.ToString().Split('\n');

        Assert.Contains("edgekube_master_broker_connected 1", lines);
        Assert.Contains("# TYPE edgekube_nodes gauge", lines);
        Assert.Contains("edgekube_nodes{ready=\"true\"} 1", lines);
        Assert.Contains("edgekube_nodes{ready=\"false\"} 1", lines);
        Assert.Contains("edgekube_nodes{ready=\"unknown\"} 1", lines);
        Assert.Contains("edgekube_node_status_condition{node=\"pi-a\",condition=\"Ready\",status=\"true\"} 1", lines);
        Assert.Contains("edgekube_node_status_condition{node=\"pi-a\",condition=\"Ready\",status=\"false\"} 0", lines);
        Assert.Contains("edgekube_node_status_condition{node=\"pi-c\",condition=\"ThermalThrottling\",status=\"false\"} 1", lines);
        Assert.Contains("edgekube_pods{phase=\"Running\"} 2", lines);
        Assert.Contains("edgekube_pods{phase=\"Pending\"} 1", lines);
        Assert.Contains("edgekube_pods{phase=\"Failed\"} 1", lines);
        Assert.Contains("edgekube_pods{phase=\"Succeeded\"} 0", lines);
        Assert.Contains("edgekube_node_sensor_value{node=\"pi-a\",sensor=\"air\",type=\"bme280\",quantity=\"temperature\",unit=\"°C\"} 21.5", lines);
        Assert.Contains("edgekube_node_sensor_value{node=\"pi-a\",sensor=\"air\",type=\"bme280\",quantity=\"pressure\",unit=\"hPa\"} 1013.25", lines);
        Assert.Contains("edgekube_node_sensor_up{node=\"pi-a\",sensor=\"air\",type=\"bme280\"} 1", lines);
        Assert.Contains("edgekube_node_sensor_up{node=\"pi-a\",sensor=\"door\",type=\"gpio-input\"} 0", lines);
        Assert.Contains("edgekube_node_sensor_timestamp_seconds{node=\"pi-a\",sensor=\"air\",type=\"bme280\"} 1767225610", lines);
        // pi-b's garbage annotation contributes nothing; every sample line is name{labels} value.
        Assert.DoesNotContain(lines, l => l.Contains("node=\"pi-b\"", StringComparison.Ordinal) && l.StartsWith("edgekube_node_sensor", StringComparison.Ordinal));
        Assert.All(lines.Where(l => l.Length > 0 && !l.StartsWith('#')), l => Assert.Matches(@"^[a-z_]+(\{([a-z_]+=""([^""\\\n]|\\.)*"",?)+\})? -?[0-9.e+]+$", l));
    }

    [Fact]
    public void Label_values_are_escaped_as_the_text_format_says()
    {
        var sensors = """[{"name":"a","type":"t\"q","readings":[{"quantity":"back\\slash","value":1,"unit":"line\nbreak"}]}]""";
        var text = new StringBuilder();
        MasterMetrics.Write(text, [Node("n", "True", sensors)], [], connected: false);
        Assert.Contains("edgekube_node_sensor_value{node=\"n\",sensor=\"a\",type=\"t\\\"q\",quantity=\"back\\\\slash\",unit=\"line\\nbreak\"} 1\n", text.ToString());
        Assert.Contains("edgekube_master_broker_connected 0\n", text.ToString());
    }
}
