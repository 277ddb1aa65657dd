using EdgeKube.Master.Api.Tables;
using static EdgeKube.Master.Tests.Api.Tables.TableKit;

namespace EdgeKube.Master.Tests.Api.Tables;

/// <summary>The printers other than pods and nodes: namespaces, events, services and the workloads.</summary>
public class ResourceTableTests
{
    [Fact]
    public void Namespace()
    {
        var ns = Parse($$"""{"metadata": {"name": "edge", "creationTimestamp": "{{Ago(TimeSpan.FromDays(40))}}"}, "status": {"phase": "Active"} }""");

        Assert.Equal(["edge", "Active", "40d"], Cells("namespaces", ns));
    }

    [Fact]
    public void Event_cells_narrow_and_wide()
    {
        var ev = Parse($$"""
            {"metadata": {"name": "web.17f3a", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
             "reason": "BackOff", "message": "Back-off restarting failed container\n", "type": "Warning",
             "source": {"component": "kubelet", "host": "pi-1"},
             "firstTimestamp": "{{Ago(TimeSpan.FromMinutes(30))}}", "lastTimestamp": "{{Ago(TimeSpan.FromSeconds(20))}}", "count": 7}
            """);

        Assert.Equal(["20s", "Warning", "BackOff", "pod/web", "Back-off restarting failed container"], NarrowCells("events", ev));
        Assert.Equal(
            ["20s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, pi-1", "Back-off restarting failed container", "30m", "7", "web.17f3a"],
            Cells("events", ev));
    }

    [Fact]
    public void Event_columns()
    {
        var columns = TableWriter.ColumnDefinitions("events");

        Assert.Equal(
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"],
            columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal([0, 0, 0, 0, 1, 1, 0, 1, 1, 1], columns.Select(c => c!["priority"]!.GetValue<int>()));
        Assert.Equal("name", columns[9]!["format"]!.GetValue<string>());
    }

    [Fact]
    public void Event_of_the_new_api_uses_event_time_series_and_reporting_controller()
    {
        var ev = Parse($$"""
            {"metadata": {"name": "n1.1"}, "involvedObject": {"kind": "Node"}, "type": "Normal", "reason": "Starting",
             "eventTime": "{{Ago(TimeSpan.FromHours(2))}}", "reportingComponent": "edgekube-agent", "reportingInstance": "",
             "series": {"count": 4, "lastObservedTime": "{{Ago(TimeSpan.FromMinutes(3))}}"} }
            """);

        Assert.Equal(["3m", "Normal", "Starting", "node", "", "edgekube-agent", "", "120m", "4", "n1.1"], Cells("events", ev));
    }

    [Fact]
    public void Event_without_any_time_or_count()
    {
        var ev = Parse("""{"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}}""");

        var cells = Cells("events", ev);
        Assert.Equal("<unknown>", cells[0]);
        Assert.Equal(["<unknown>", "1"], cells[7..9]);
    }

    [Fact]
    public void Deployment()
    {
        var deployment = Parse($$"""
            {"metadata": {"name": "web", "creationTimestamp": "{{Ago(TimeSpan.FromMinutes(7))}}"},
             "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]},
                      "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]} } },
             "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2} }
            """);

        Assert.Equal(["web", "2/3", "3", "2", "7m", "nginx,log", "nginx:1.27,busybox", "app=web,tier in (edge,front)"], Cells("deployments.apps", deployment));
    }

    [Fact]
    public void Deployment_without_status_or_replicas_wants_one()
    {
        var deployment = Parse("""{"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}""");

        Assert.Equal(["web", "0/1", "0", "0"], Cells("deployments.apps", deployment)[..4]);
    }

    [Fact]
    public void Deployment_with_an_invalid_selector()
    {
        var deployment = Parse("""{"metadata": {"name": "web"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}}""");

        Assert.Equal("<invalid>", Cells("deployments.apps", deployment)[7]);
    }

    [Fact]
    public void Deployment_columns()
    {
        var columns = TableWriter.ColumnDefinitions("deployments.apps");

        Assert.Equal(
            ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"],
            columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal([0, 0, 0, 0, 0, 1, 1, 1], columns.Select(c => c!["priority"]!.GetValue<int>()));
    }

    [Fact]
    public void ReplicaSet()
    {
        var replicaSet = Parse($$"""
            {"metadata": {"name": "web-7d9f", "creationTimestamp": "{{Ago(TimeSpan.FromMinutes(7))}}"},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f"} },
                      "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]} } },
             "status": {"replicas": 2, "readyReplicas": 1} }
            """);

        Assert.Equal(["web-7d9f", "2", "2", "1", "7m", "nginx", "nginx:1.27", "app=web,pod-template-hash=7d9f"], Cells("replicasets.apps", replicaSet));
        Assert.Equal("integer", TableWriter.ColumnDefinitions("replicasets.apps")[1]!["type"]!.GetValue<string>());
    }

    [Fact]
    public void DaemonSet()
    {
        var daemonSet = Parse($$"""
            {"metadata": {"name": "sensor", "creationTimestamp": "{{Ago(TimeSpan.FromHours(5))}}"},
             "spec": {"selector": {"matchLabels": {"app": "sensor"} },
                      "template": {"spec": {"nodeSelector": {"kubernetes.io/arch": "arm64", "edgekube.io/i2c": "true"},
                                            "containers": [{"name": "bme280", "image": "registry.local/bme280:1"}]} } },
             "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3, "updatedNumberScheduled": 4, "numberAvailable": 3} }
            """);

        Assert.Equal(
            ["sensor", "4", "4", "3", "4", "3", "edgekube.io/i2c=true,kubernetes.io/arch=arm64", "5h", "bme280", "registry.local/bme280:1", "app=sensor"],
            Cells("daemonsets.apps", daemonSet));
    }

    [Fact]
    public void DaemonSet_without_node_selector_or_selector()
    {
        var daemonSet = Parse("""{"metadata": {"name": "d"}, "spec": {"selector": {}}}""");

        var cells = Cells("daemonsets.apps", daemonSet);
        Assert.Equal("<none>", cells[6]);
        Assert.Equal("<none>", cells[10]);
    }

    [Theory]
    [InlineData("""{"completions": 3}""", """{"succeeded": 1}""", "Running", "1/3")]
    [InlineData("""{"parallelism": 4}""", """{"succeeded": 2}""", "Running", "2/1 of 4")]
    [InlineData("""{}""", """{"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}""", "Complete", "1/1")]
    [InlineData("""{"completions": 1}""", """{"conditions": [{"type": "Failed", "status": "True"}]}""", "Failed", "0/1")]
    [InlineData("""{"completions": 1}""", """{"conditions": [{"type": "Suspended", "status": "True"}]}""", "Suspended", "0/1")]
    [InlineData("""{"completions": 1}""", """{"conditions": [{"type": "FailureTarget", "status": "True"}]}""", "FailureTarget", "0/1")]
    [InlineData("""{"completions": 1}""", """{"conditions": [{"type": "Complete", "status": "False"}]}""", "Running", "0/1")]
    public void Job_status_and_completions(string spec, string status, string expectedStatus, string expectedCompletions)
    {
        var job = Parse($$"""{"metadata": {"name": "backup"}, "spec": {{spec}}, "status": {{status}}}""");

        Assert.Equal(["backup", expectedStatus, expectedCompletions], Cells("jobs.batch", job)[..3]);
    }

    [Fact]
    public void Job_duration()
    {
        var running = Parse($$"""{"metadata": {"name": "j"}, "status": {"startTime": "{{Ago(TimeSpan.FromSeconds(95))}}"} }""");
        var done = Parse($$"""{"metadata": {"name": "j"}, "status": {"startTime": "{{Ago(TimeSpan.FromHours(1))}}", "completionTime": "{{Ago(TimeSpan.FromMinutes(55))}}"} }""");
        var notStarted = Parse("""{"metadata": {"name": "j"}}""");

        Assert.Equal("95s", Cells("jobs.batch", running)[3]);
        Assert.Equal("5m", Cells("jobs.batch", done)[3]);
        Assert.Equal("", Cells("jobs.batch", notStarted)[3]);
    }

    [Fact]
    public void Job_being_deleted_is_terminating()
    {
        var job = Parse($$"""{"metadata": {"name": "j", "deletionTimestamp": "{{Ago(TimeSpan.FromSeconds(1))}}"}, "spec": {"completions": 1} }""");

        Assert.Equal("Terminating", Cells("jobs.batch", job)[1]);
    }

    [Fact]
    public void Service_cluster_ip()
    {
        var service = Parse($$"""
            {"metadata": {"name": "web", "creationTimestamp": "{{Ago(TimeSpan.FromDays(2))}}"},
             "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                      "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"} } }
            """);

        Assert.Equal(["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "2d", "app=web"], Cells("services", service));
    }

    [Fact]
    public void Service_node_port_and_load_balancer()
    {
        var nodePort = Parse("""{"metadata": {"name": "a"}, "spec": {"type": "NodePort", "clusterIP": "10.43.0.2", "ports": [{"port": 80, "nodePort": 30080}]}}""");
        var pending = Parse("""{"metadata": {"name": "b"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP"}]}}""");
        var balanced = Parse("""
            {"metadata": {"name": "c"}, "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.4"]},
             "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}, {"hostname": "lb.local"}]}}}
            """);

        Assert.Equal(["a", "NodePort", "10.43.0.2", "<none>", "80:30080/TCP"], Cells("services", nodePort)[..5]);
        Assert.Equal(["<none>", "<pending>", "443/TCP"], Cells("services", pending)[2..5]);
        Assert.Equal("192.168.1.240,lb.local,198.51.100.4", Cells("services", balanced)[3]);
        Assert.Equal("<none>", Cells("services", balanced)[4]);
    }
}
