using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Tables;
using Microsoft.Extensions.Time.Testing;
using static EdgeKube.Master.Tests.Api.Tables.TableKit;

namespace EdgeKube.Master.Tests.Api.Tables;

public class TableWriterTests
{
    private static readonly JsonObject Web = Parse($$"""
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                      "creationTimestamp": "{{Ago(TimeSpan.FromMinutes(5))}}", "labels": {"app": "web"} },
         "spec": {"containers": [{"name": "app", "image": "nginx"}]},
         "status": {"phase": "Pending"} }
        """);

    [Fact]
    public void List_table_has_the_meta_v1_shape()
    {
        var table = TableWriter.ToTable("pods", [Web], "77", includeObject: null, Now);

        Assert.Equal("Table", table["kind"]!.GetValue<string>());
        Assert.Equal("meta.k8s.io/v1", table["apiVersion"]!.GetValue<string>());
        Assert.Equal("""{"resourceVersion":"77"}""", table["metadata"]!.ToJsonString());
        Assert.Single(table["rows"]!.AsArray());
        Assert.Null(table["rows"]![0]!["conditions"]);
    }

    [Fact]
    public void Pod_columns_are_the_api_servers()
    {
        var columns = TableWriter.ToTable("pods", [], "1", null, Now)["columnDefinitions"]!.AsArray();

        Assert.Equal(
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"],
            columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal([0, 0, 0, 0, 0, 1, 1, 1, 1], columns.Select(c => c!["priority"]!.GetValue<int>()));
        Assert.Equal("name", columns[0]!["format"]!.GetValue<string>());
        Assert.Equal("", columns[1]!["format"]!.GetValue<string>());
        Assert.All(columns, c => Assert.Equal("string", c!["type"]!.GetValue<string>()));
        Assert.StartsWith("Name must be unique within a namespace.", columns[0]!["description"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_list_has_columns_and_no_rows()
    {
        var table = TableWriter.ToTable("pods", [], "5", null, Now);

        Assert.Empty(table["rows"]!.AsArray());
        Assert.Equal(9, table["columnDefinitions"]!.AsArray().Count);
    }

    [Fact]
    public void Paging_fields_go_to_metadata()
    {
        var table = TableWriter.ToTable("pods", [Web], "77", null, Now, continueToken: "abc", remainingItemCount: 3);

        Assert.Equal("""{"resourceVersion":"77","continue":"abc","remainingItemCount":3}""", table["metadata"]!.ToJsonString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Metadata")]
    public void Rows_carry_partial_object_metadata_by_default(string? includeObject)
    {
        var row = TableWriter.ToTable("pods", [Web], "1", includeObject, Now)["rows"]![0]!;

        var obj = row["object"]!.AsObject();
        Assert.Equal("PartialObjectMetadata", obj["kind"]!.GetValue<string>());
        Assert.Equal("meta.k8s.io/v1", obj["apiVersion"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(Web["metadata"], obj["metadata"]));
        Assert.Null(obj["spec"]);
    }

    [Fact]
    public void Include_object_embeds_the_whole_object()
    {
        var row = TableWriter.ToTable("pods", [Web], "1", "Object", Now)["rows"]![0]!;

        Assert.True(JsonNode.DeepEquals(Web, row["object"]));
    }

    [Fact]
    public void Include_none_leaves_the_object_null()
    {
        var row = TableWriter.ToTable("pods", [Web], "1", "None", Now)["rows"]![0]!.AsObject();

        Assert.True(row.ContainsKey("object"));
        Assert.Null(row["object"]);
    }

    [Fact]
    public void Unknown_include_object_is_the_api_servers_bad_request()
    {
        var e = Assert.Throws<TableOptionsException>(() => TableWriter.ToTable("pods", [Web], "1", "Everything", Now));

        Assert.Equal(
            "Unable to convert to Table as requested: includeObject: Invalid value: \"Everything\": must be 'Metadata', 'Object', 'None', or empty",
            e.Message);
    }

    [Fact]
    public void Table_does_not_share_nodes_with_the_input()
    {
        var table = TableWriter.ToTable("pods", [Web], "1", "Object", Now);
        table["rows"]![0]!["object"]!["metadata"]!["name"] = "changed";

        Assert.Equal("web", Web["metadata"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void Resources_without_a_printer_get_name_and_age()
    {
        var configMap = Parse($$"""{"metadata": {"name": "settings", "creationTimestamp": "{{Ago(TimeSpan.FromDays(3))}}"}, "data": {"a": "b"} }""");
        var table = TableWriter.ToTable("configmaps", [configMap], "1", null, Now);

        var columns = table["columnDefinitions"]!.AsArray();
        Assert.Equal(["Name", "Age"], columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal("date", columns[1]!["type"]!.GetValue<string>());
        Assert.Equal(["settings", "3d"], Cells("configmaps", configMap));
    }

    [Fact]
    public void Watch_tables_carry_columns_on_the_first_event_only()
    {
        var time = new FakeTimeProvider(Now);
        var encoder = new TableWatchEncoder("pods", null, time);

        var first = encoder.Encode(Web);
        time.Advance(TimeSpan.FromMinutes(1));
        var second = encoder.Encode(Web);

        Assert.Equal(9, first["columnDefinitions"]!.AsArray().Count);
        Assert.True(second.ContainsKey("columnDefinitions"));
        Assert.Null(second["columnDefinitions"]);
        Assert.Equal("""{"resourceVersion":"42"}""", second["metadata"]!.ToJsonString());
        Assert.Equal("6m", second["rows"]![0]!["cells"]![4]!.GetValue<string>());
        Assert.Equal("PartialObjectMetadata", second["rows"]![0]!["object"]!["kind"]!.GetValue<string>());
    }

    [Fact]
    public void Watch_passes_a_status_through_and_counts_it_as_the_first_event()
    {
        var encoder = new TableWatchEncoder("pods", null, new FakeTimeProvider(Now));
        var gone = Parse("""{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"}""");

        Assert.Same(gone, encoder.Encode(gone));
        Assert.Null(encoder.Encode(Web)["columnDefinitions"]);
    }

    [Fact]
    public void Watch_encoder_rejects_a_bad_include_object_before_streaming() =>
        Assert.Throws<TableOptionsException>(() => new TableWatchEncoder("pods", "all", TimeProvider.System));

    [Fact]
    public void Watch_table_from_the_static_helper()
    {
        var table = TableWriter.ToWatchTable("pods", Web, "None", Now, includeColumnDefinitions: true);

        Assert.Equal(9, table["columnDefinitions"]!.AsArray().Count);
        Assert.Null(table["rows"]![0]!["object"]);
    }
}
