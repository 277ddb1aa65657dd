using System.Text.Json.Nodes;
using static EdgeKube.Master.Tests.Api.Tables.TableKit;

namespace EdgeKube.Master.Tests.Api.Tables;

public class PodTableTests
{
    private static readonly string Created = Ago(TimeSpan.FromMinutes(5));

    [Fact]
    public void Pending_while_the_container_is_created()
    {
        var pod = Pod("""
            "status": {"phase": "Pending", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
            """);

        Assert.Equal(["web", "0/1", "ContainerCreating", "0", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Pending_without_statuses_shows_the_phase()
    {
        Assert.Equal(["web", "0/1", "Pending", "0", "5m"], NarrowCells("pods", Pod("""
            "status": {"phase": "Pending"}
            """)));
    }

    [Fact]
    public void Running_and_ready()
    {
        var pod = Pod("""
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
              {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T11:55:00Z"}}}]}
            """);

        Assert.Equal(["web", "1/1", "Running", "0", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Crash_loop_shows_restarts_with_the_time_of_the_last()
    {
        var pod = Pod($$"""
            "status": {"phase": "Running", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 5,
               "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"} },
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "{{Ago(TimeSpan.FromSeconds(75))}}"} } }]}
            """);

        Assert.Equal(["web", "0/1", "CrashLoopBackOff", "5 (75s ago)", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Restarts_without_a_last_termination_show_the_count_alone()
    {
        var pod = Pod("""
            "status": {"phase": "Running", "containerStatuses": [
              {"name": "app", "ready": true, "restartCount": 3, "state": {"running": {}}}]}
            """);

        Assert.Equal("3", NarrowCells("pods", pod)[3]);
    }

    [Fact]
    public void Last_restart_is_the_latest_over_all_containers()
    {
        var pod = Pod($$"""
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
              {"name": "a", "ready": true, "restartCount": 1, "state": {"running": { } },
               "lastState": {"terminated": {"exitCode": 1, "finishedAt": "{{Ago(TimeSpan.FromHours(3))}}"} } },
              {"name": "b", "ready": true, "restartCount": 2, "state": {"running": { } },
               "lastState": {"terminated": {"exitCode": 1, "finishedAt": "{{Ago(TimeSpan.FromMinutes(12))}}"} } }]}
            """);

        Assert.Equal("3 (12m ago)", NarrowCells("pods", pod)[3]);
    }

    [Fact]
    public void Ready_counts_ready_running_containers_and_the_first_with_a_reason_names_the_status()
    {
        var pod = Pod("""
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
              {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
              {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
            """);

        Assert.Equal(["web", "1/2", "CrashLoopBackOff", "0", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Image_pull_back_off()
    {
        var pod = Pod("""
            "status": {"phase": "Pending", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
            """);

        Assert.Equal("ImagePullBackOff", NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void First_of_two_init_containers_running_is_init_0_of_2()
    {
        var pod = Pod("""
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending",
              "initContainerStatuses": [
                {"name": "i1", "ready": false, "restartCount": 0, "state": {"running": {}}},
                {"name": "i2", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
              "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}
            """);

        Assert.Equal(["web", "0/1", "Init:0/2", "0", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Second_init_container_running_is_init_1_of_2()
    {
        var pod = Pod("""
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
              {"name": "i1", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
              {"name": "i2", "ready": false, "restartCount": 0, "state": {"running": {}}}]}
            """);

        Assert.Equal("Init:1/2", NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Crash_looping_init_container_and_its_restarts()
    {
        var pod = Pod($$"""
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
              {"name": "i1", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"} } },
              {"name": "i2", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"} },
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "{{Ago(TimeSpan.FromSeconds(30))}}"} } }],
              "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"} } }]}
            """);

        Assert.Equal(["web", "0/1", "Init:CrashLoopBackOff", "4 (30s ago)", "5m"], NarrowCells("pods", pod));
    }

    [Theory]
    [InlineData("""{"exitCode": 1, "reason": "Error"}""", "Init:Error")]
    [InlineData("""{"exitCode": 2}""", "Init:ExitCode:2")]
    [InlineData("""{"exitCode": 137, "signal": 9}""", "Init:Signal:9")]
    public void Failed_init_container(string terminated, string expected)
    {
        var pod = Pod($$"""
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
              {"name": "i1", "ready": false, "restartCount": 0, "state": {"terminated": {{terminated}}} }]}
            """);

        Assert.Equal(expected, NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Completed_pod_and_its_row_condition()
    {
        var pod = Pod("""
            "status": {"phase": "Succeeded", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
            """);

        Assert.Equal(["web", "0/1", "Completed", "0", "5m"], NarrowCells("pods", pod));
        var condition = Row("pods", pod)["conditions"]![0]!;
        Assert.Equal("Completed", condition["type"]!.GetValue<string>());
        Assert.Equal("True", condition["status"]!.GetValue<string>());
        Assert.Equal("Succeeded", condition["reason"]!.GetValue<string>());
        Assert.Equal("The pod has completed successfully.", condition["message"]!.GetValue<string>());
    }

    [Fact]
    public void Failed_pod_shows_the_container_reason()
    {
        var pod = Pod("""
            "status": {"phase": "Failed", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
            """);

        Assert.Equal("Error", NarrowCells("pods", pod)[2]);
        Assert.Equal("Failed", Row("pods", pod)["conditions"]![0]!["reason"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"exitCode": 137}""", "ExitCode:137")]
    [InlineData("""{"exitCode": 143, "signal": 15}""", "Signal:15")]
    public void Terminated_without_a_reason(string terminated, string expected)
    {
        var pod = Pod($$"""
            "status": {"phase": "Failed", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {{terminated}}} }]}
            """);

        Assert.Equal(expected, NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Running_pod_being_deleted_is_terminating()
    {
        var pod = Pod($$"""
            "metadata": {"name": "web", "creationTimestamp": "{{Created}}", "deletionTimestamp": "{{Ago(TimeSpan.FromSeconds(10))}}"},
            "status": {"phase": "Running", "containerStatuses": [
              {"name": "app", "ready": true, "restartCount": 0, "state": {"running": { } } }]}
            """);

        Assert.Equal(["web", "1/1", "Terminating", "0", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Finished_pod_being_deleted_keeps_its_status()
    {
        var pod = Pod($$"""
            "metadata": {"name": "web", "creationTimestamp": "{{Created}}", "deletionTimestamp": "{{Ago(TimeSpan.FromSeconds(10))}}"},
            "status": {"phase": "Succeeded", "containerStatuses": [
              {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"} } }]}
            """);

        Assert.Equal("Completed", NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Pod_of_a_lost_node_being_deleted_is_unknown()
    {
        var pod = Pod($$"""
            "metadata": {"name": "web", "creationTimestamp": "{{Created}}", "deletionTimestamp": "{{Ago(TimeSpan.FromSeconds(10))}}"},
            "status": {"phase": "Running", "reason": "NodeLost", "containerStatuses": [
              {"name": "app", "ready": true, "restartCount": 0, "state": {"running": { } } }]}
            """);

        Assert.Equal("Unknown", NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Status_reason_replaces_the_phase()
    {
        var pod = Pod("""
            "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
            """);

        Assert.Equal("Evicted", NarrowCells("pods", pod)[2]);
    }

    [Theory]
    [InlineData("True", "Running")]
    [InlineData("False", "NotReady")]
    public void Completed_container_beside_a_running_one(string ready, string expected)
    {
        var pod = Pod($$"""
            "spec": {"containers": [{"name": "job"}, {"name": "proxy"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "{{ready}}"}], "containerStatuses": [
              {"name": "job", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"} } },
              {"name": "proxy", "ready": true, "restartCount": 0, "state": {"running": { } } }]}
            """);

        Assert.Equal(["web", "1/2", expected], NarrowCells("pods", pod)[..3]);
    }

    [Fact]
    public void Started_sidecar_counts_as_a_container()
    {
        var pod = Pod("""
            "spec": {"initContainers": [{"name": "log", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
              "initContainerStatuses": [
                {"name": "log", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
              "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}}}]}
            """);

        Assert.Equal(["web", "2/2", "Running", "3", "5m"], NarrowCells("pods", pod));
    }

    [Fact]
    public void Scheduling_gated()
    {
        var pod = Pod("""
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
            """);

        Assert.Equal("SchedulingGated", NarrowCells("pods", pod)[2]);
    }

    [Fact]
    public void Wide_cells()
    {
        var pod = Pod("""
            "spec": {"nodeName": "pi-3", "containers": [{"name": "app"}],
                     "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]},
            "status": {"phase": "Running", "podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}],
                       "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}
            """);

        Assert.Equal(["10.42.0.7", "pi-3", "<none>", "1/2"], Cells("pods", pod)[5..]);
    }

    [Fact]
    public void Wide_cells_of_an_unscheduled_pod()
    {
        Assert.Equal(["<none>", "<none>", "<none>", "<none>"], Cells("pods", Pod("""
            "status": {"phase": "Pending"}
            """))[5..]);
    }

    [Fact]
    public void Pod_without_creation_timestamp_has_unknown_age()
    {
        var pod = Parse("""{"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}]}}""");

        Assert.Equal(["web", "0/1", "", "0", "<unknown>"], NarrowCells("pods", pod));
    }

    /// <summary>A pod named web, created 5 minutes ago with one container "app", and the given JSON members (which may replace metadata or spec).</summary>
    private static JsonObject Pod(string members)
    {
        var pod = Parse($$"""{ {{members}} }""");
        pod["metadata"] ??= Parse($$"""{"name": "web", "namespace": "default", "creationTimestamp": "{{Created}}"}""");
        pod["spec"] ??= Parse("""{"containers": [{"name": "app"}]}""");
        return pod;
    }
}
