using System.Text.Json.Nodes;
using EdgeKube.Agent.Json;
using k8s;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Json;

public class KubeJsonTests
{
    private const string Pod = """
        {"apiVersion":"v1","kind":"Pod",
         "metadata":{"name":"web","namespace":"default","uid":"u-1","creationTimestamp":"2026-11-26T08:15:30Z",
                     "deletionTimestamp":"2026-11-26T08:15:31.123456789Z","labels":{"app":"web"}},
         "spec":{"nodeName":"board-1","containers":[{"name":"app","image":"busybox:1",
            "resources":{"requests":{"cpu":"250m","memory":"64Mi"},"limits":{"cpu":"1","memory":"128Mi"}},
            "ports":[{"name":"http","containerPort":8080,"hostPort":80,"protocol":"TCP"}],
            "livenessProbe":{"httpGet":{"path":"/","port":"http"},"periodSeconds":5},
            "readinessProbe":{"tcpSocket":{"port":8080}}}],
            "tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]},
         "status":{"phase":"Running","startTime":"2026-11-26T08:15:32.500000Z",
            "conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-26T08:15:33Z"}]}}
        """;

    [Fact]
    public void Quantities_int_or_strings_and_times_read_and_write_as_kubernetes_does()
    {
        var pod = KubeJson.DeserializePod(Pod)!;
        var container = pod.Spec.Containers.Single();
        Assert.Equal(0.25m, container.Resources.Requests["cpu"].ToDecimal());
        Assert.Equal(128L * 1024 * 1024, container.Resources.Limits["memory"].ToInt64());
        Assert.Equal("http", container.LivenessProbe.HttpGet.Port.Value);
        Assert.Equal("8080", container.ReadinessProbe.TcpSocket.Port.Value);
        Assert.Equal(new DateTime(2026, 11, 26, 8, 15, 30, DateTimeKind.Utc), pod.Metadata.CreationTimestamp);
        Assert.Equal(DateTimeKind.Utc, pod.Metadata.CreationTimestamp!.Value.Kind);
        // Go's nanoseconds are cut to .NET's ticks, not rejected.
        Assert.Equal(new DateTime(2026, 11, 26, 8, 15, 31, DateTimeKind.Utc).AddTicks(1234567), pod.Metadata.DeletionTimestamp);
        Assert.Equal(300, pod.Spec.Tolerations.Single().TolerationSeconds);

        var written = JsonNode.Parse(KubeJson.Serialize(pod))!;
        var app = written["spec"]!["containers"]![0]!;
        Assert.Equal("250m", (string?)app["resources"]!["requests"]!["cpu"]);
        Assert.Equal("http", (string?)app["livenessProbe"]!["httpGet"]!["port"]);
        Assert.Equal(8080, (int?)app["readinessProbe"]!["tcpSocket"]!["port"]);
        Assert.Equal("2026-11-26T08:15:30Z", (string?)written["metadata"]!["creationTimestamp"]);
        Assert.Equal("2026-11-26T08:15:32.500000Z", (string?)written["status"]!["startTime"]);
        Assert.Null(written["spec"]!["volumes"]); // nulls are left out, as the API server does
    }

    [Fact]
    public void The_agents_json_is_the_kubernetes_clients_json()
    {
        var pod = KubeJson.DeserializePod(Pod)!;
        Assert.Equal(KubernetesJson.Serialize(pod), KubeJson.Serialize(pod));
        var node = new V1Node
        {
            Metadata = new V1ObjectMeta { Name = "board-1", Labels = new Dictionary<string, string> { ["kubernetes.io/os"] = "linux" } },
            Status = new V1NodeStatus
            {
                Capacity = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("4"), ["memory"] = new("3906Mi") },
                Conditions = [new V1NodeCondition { Type = "Ready", Status = "True", LastHeartbeatTime = new DateTime(2026, 11, 26, 8, 0, 0, DateTimeKind.Utc) }],
            },
        };
        Assert.Equal(KubernetesJson.Serialize(node), KubeJson.Serialize(node));
    }

    [Theory]
    [InlineData("{\"metadata\":{\"creationTimestamp\":\"yesterday\"}}")]
    [InlineData("{\"metadata\":{\"creationTimestamp\":12}}")]
    public void A_bad_time_is_a_json_error(string json) =>
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubeJson.DeserializePod(json));
}
