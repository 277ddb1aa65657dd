using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;

namespace EdgeKube.Master.Api;

/// <summary>
/// The master's <c>/metrics</c> (Prometheus text format 0.0.4), served by the API server behind the same
/// bearer token as every other path, as kube-apiserver serves its own: the cluster as the store holds it
/// (nodes by Ready status, each node's conditions in kube-state-metrics' shape, pods by phase), whether the
/// bridge reaches the broker, and the sensor readings the nodes report (the values as last sent: a node
/// sends a reading when it moved by more than its delta or at its refresh).
/// </summary>
public sealed class MasterMetrics(IObjectStore store, Func<bool> brokerConnected)
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly string[] Phases = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

    public async Task<string> RenderAsync(CancellationToken cancellationToken)
    {
        var nodes = await store.ListAsync("nodes", null, cancellationToken).ConfigureAwait(false);
        var pods = await store.ListAsync("pods", null, cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder();
        Write(text, nodes.Items, pods.Items, brokerConnected());
        return text.ToString();
    }

    /// <summary>Writes every family; pure, so the format is tested without a master.</summary>
    public static void Write(StringBuilder text, IReadOnlyList<JsonObject> nodes, IReadOnlyList<JsonObject> pods, bool connected)
    {
        Family(text, "edgekube_master_broker_connected", "gauge", "Whether the master's MQTT bridge is connected to the broker.");
        Sample(text, "edgekube_master_broker_connected", [], connected ? 1 : 0);

        var byName = nodes.OrderBy(n => n.Name(), StringComparer.Ordinal).ToList();
        Family(text, "edgekube_nodes", "gauge", "Nodes by the status of their Ready condition.");
        var ready = byName.GroupBy(n => ConditionStatus(n, "Ready")).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        foreach (var status in new[] { "true", "false", "unknown" })
        {
            Sample(text, "edgekube_nodes", [("ready", status)], ready.GetValueOrDefault(status));
        }

        Family(text, "edgekube_node_status_condition", "gauge", "The node's conditions as kube-state-metrics writes them: 1 for the status the condition has, 0 for the others.");
        foreach (var node in byName)
        {
            foreach (var condition in (node["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>().Select(c => c.Str("type")).OfType<string>().Order(StringComparer.Ordinal))
            {
                var has = ConditionStatus(node, condition);
                foreach (var status in new[] { "true", "false", "unknown" })
                {
                    Sample(text, "edgekube_node_status_condition", [("node", node.Name()), ("condition", condition), ("status", status)], has == status ? 1 : 0);
                }
            }
        }

        Family(text, "edgekube_pods", "gauge", "Pods by phase.");
        var phases = pods.GroupBy(p => p["status"]?["phase"] is JsonValue v && v.TryGetValue<string>(out var phase) && phase.Length > 0 ? phase : "Pending")
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        foreach (var phase in Phases)
        {
            Sample(text, "edgekube_pods", [("phase", phase)], phases.GetValueOrDefault(phase));
        }

        var sensors = byName.Select(n => (Node: n.Name(), Sensors: Sensors(n))).ToList();
        Family(text, "edgekube_node_sensor_value", "gauge", "The reading a node last sent for a sensor quantity, in its unit.");
        foreach (var (node, list) in sensors)
        {
            foreach (var s in list.Where(s => s.Error is null))
            {
                foreach (var (quantity, value, unit) in s.Readings)
                {
                    Sample(text, "edgekube_node_sensor_value", [("node", node), ("sensor", s.Name), ("type", s.Type), ("quantity", quantity), ("unit", unit)], value);
                }
            }
        }

        Family(text, "edgekube_node_sensor_up", "gauge", "Whether the node's last read of the sensor succeeded.");
        foreach (var (node, list) in sensors)
        {
            foreach (var s in list)
            {
                Sample(text, "edgekube_node_sensor_up", [("node", node), ("sensor", s.Name), ("type", s.Type)], s.Error is null ? 1 : 0);
            }
        }

        Family(text, "edgekube_node_sensor_timestamp_seconds", "gauge", "When the node took the reading (or saw the error) it last sent, in Unix seconds.");
        foreach (var (node, list) in sensors)
        {
            foreach (var s in list.Where(s => s.Time is not null))
            {
                Sample(text, "edgekube_node_sensor_timestamp_seconds", [("node", node), ("sensor", s.Name), ("type", s.Type)], s.Time!.Value.ToUnixTimeSeconds());
            }
        }
    }

    private sealed record Sensor(string Name, string Type, IReadOnlyList<(string Quantity, double Value, string Unit)> Readings, string? Error, DateTimeOffset? Time);

    /// <summary>The node's structured sensor annotation; a node that sent garbage contributes nothing (and breaks no scrape).</summary>
    private static List<Sensor> Sensors(JsonObject node)
    {
        var text = (node.Metadata()["annotations"] as JsonObject)?.Str(NodeKeys.Sensors);
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        try
        {
            if (JsonNode.Parse(text) is not JsonArray array)
            {
                return [];
            }

            var list = new List<Sensor>();
            foreach (var s in array.OfType<JsonObject>())
            {
                if (s.Str("name") is not { Length: > 0 } name)
                {
                    continue;
                }

                var readings = new List<(string, double, string)>();
                foreach (var r in (s["readings"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    if (r.Str("quantity") is { Length: > 0 } quantity && r["value"] is JsonValue v && v.TryGetValue<double>(out var value))
                    {
                        readings.Add((quantity, value, r.Str("unit") ?? string.Empty));
                    }
                }

                list.Add(new Sensor(name, s.Str("type") ?? string.Empty, readings, s.Str("error"), ObjectMeta.ParseTime(s.Str("time"))));
            }

            return list;
        }
        catch (System.Text.Json.JsonException)
        {
            return [];
        }
    }

    private static string ConditionStatus(JsonObject node, string type) =>
        (node["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == type)?.Str("status") switch
        {
            "True" => "true",
            "False" => "false",
            _ => "unknown",
        };

    private static void Family(StringBuilder text, string name, string type, string help) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder text, string name, (string Name, string Value)[] labels, double value)
    {
        text.Append(name);
        if (labels.Length > 0)
        {
            text.Append('{');
            for (var i = 0; i < labels.Length; i++)
            {
                text.Append(i == 0 ? string.Empty : ",").Append(labels[i].Name).Append("=\"");
                foreach (var c in labels[i].Value)
                {
                    // The text format's three escapes in label values.
                    _ = c switch
                    {
                        '\\' => text.Append("\\\\"),
                        '"' => text.Append("\\\""),
                        '\n' => text.Append("\\n"),
                        _ => text.Append(c),
                    };
                }

                text.Append('"');
            }

            text.Append('}');
        }

        text.Append(' ').Append(value switch
        {
            double.PositiveInfinity => "+Inf",
            double.NegativeInfinity => "-Inf",
            _ when double.IsNaN(value) => "NaN",
            _ => value.ToString("R", CultureInfo.InvariantCulture),
        }).Append('\n');
    }
}
