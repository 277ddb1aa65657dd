using System.Text.Json.Nodes;
using EdgeKube.Master.Bridge;

namespace EdgeKube.Master.Tests.Bridge;

/// <summary>A node's report merged into the stored Node: what the node owns is replaced, what people set stays.</summary>
public sealed class NodeReportTests
{
    private static JsonObject Node(JsonObject labels, JsonObject annotations) => new()
    {
        ["metadata"] = new JsonObject { ["name"] = "pi", ["labels"] = labels, ["annotations"] = annotations },
    };

    private static string Structured(params string[] names) =>
        new JsonArray([.. names.Select(n => (JsonNode)new JsonObject { ["name"] = n, ["type"] = "bme280", ["readings"] = new JsonArray() })]).ToJsonString();

    [Fact]
    public void A_sensor_the_report_no_longer_carries_loses_its_label_and_annotations_and_nothing_else_goes()
    {
        var stored = Node(
            new JsonObject { ["kubernetes.io/hostname"] = "pi", ["sensors.edgekube.io/air"] = "bme280", ["sensors.edgekube.io/door"] = "gpio-input", ["sensors.edgekube.io/mine"] = "set-by-hand", ["site"] = "lab" },
            new JsonObject
            {
                ["edgekube.io/sensors"] = Structured("air", "door"),
                ["edgekube.io/air.temperature"] = "21.5 °C",
                ["edgekube.io/air.humidity"] = "40 %",
                ["edgekube.io/door.state"] = "on",
                ["edgekube.io/identify"] = "30s",
                ["edgekube.io/airflow"] = "by hand",
            });

        // The door was taken out of the config; the air sensor failed (values gone, error in, label kept).
        var report = Node(
            new JsonObject { ["kubernetes.io/hostname"] = "pi", ["sensors.edgekube.io/air"] = "bme280" },
            new JsonObject { ["edgekube.io/sensors"] = Structured("air"), ["edgekube.io/air.error"] = "Remote I/O error" });
        NodeReport.Merge(stored, report);

        var labels = stored["metadata"]!["labels"]!.AsObject();
        var annotations = stored["metadata"]!["annotations"]!.AsObject();
        Assert.Equal(["kubernetes.io/hostname", "sensors.edgekube.io/air", "sensors.edgekube.io/mine", "site"], labels.Select(l => l.Key).Order(StringComparer.Ordinal));
        Assert.Equal(["edgekube.io/air.error", "edgekube.io/airflow", "edgekube.io/identify", "edgekube.io/sensors"], annotations.Select(a => a.Key).Order(StringComparer.Ordinal));

        // Absent for long: the node drops the label; then no sensors at all: the structured form goes too.
        NodeReport.Merge(stored, Node(new JsonObject(), new JsonObject { ["edgekube.io/sensors"] = Structured("air"), ["edgekube.io/air.error"] = "Remote I/O error" }));
        Assert.False(labels.ContainsKey("sensors.edgekube.io/air"));
        NodeReport.Merge(stored, Node(new JsonObject(), new JsonObject()));
        Assert.Equal(["edgekube.io/airflow", "edgekube.io/identify"], annotations.Select(a => a.Key).Order(StringComparer.Ordinal));
        Assert.Equal("set-by-hand", labels["sensors.edgekube.io/mine"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("{\"name\":\"x\"}")]
    [InlineData("[{\"name\":\"../x\"},{\"type\":\"y\"},3]")]
    public void A_structured_annotation_that_is_not_a_nodes_names_no_sensors(string? text) => Assert.Empty(NodeReport.SensorNames(text));
}
