using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Patching;
using static EdgeKube.Master.Tests.Api.Patching.PatchJson;

namespace EdgeKube.Master.Tests.Api.Patching;

public class StrategicMergePatchTests
{
    private const string LastApplied = "kubectl.kubernetes.io/last-applied-configuration";

    // A running pod as the API server holds it, defaults filled in.
    private static JsonObject LivePod() => Obj("""
        {"apiVersion":"v1","kind":"Pod",
         "metadata":{"name":"web","namespace":"default","uid":"u-1","resourceVersion":"7",
                     "labels":{"app":"web","tier":"front"},
                     "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"old\":true}\n"}},
         "spec":{"containers":[
                   {"name":"app","image":"nginx:1.25","imagePullPolicy":"IfNotPresent",
                    "ports":[{"containerPort":80,"protocol":"TCP"}],
                    "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],
                    "volumeMounts":[{"name":"data","mountPath":"/data"}],
                    "terminationMessagePath":"/dev/termination-log"},
                   {"name":"sidecar","image":"busybox:1.36","args":["sleep","infinity"]}],
                 "volumes":[{"name":"data","emptyDir":{}}],
                 "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
                 "nodeName":"pi-1","restartPolicy":"Always"},
         "status":{"phase":"Running","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"True"}]}}
        """);

    private static JsonObject LiveDeployment(string apiVersion = "apps/v1", string kind = "Deployment")
    {
        var deployment = Obj("""
            {"apiVersion":"apps/v1","kind":"Deployment",
             "metadata":{"name":"web","namespace":"default","generation":3},
             "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
                     "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},
                     "template":{"metadata":{"labels":{"app":"web"}},
                                 "spec":{"containers":[
                                   {"name":"app","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}],
                                    "env":[{"name":"MODE","value":"prod"}]},
                                   {"name":"log","image":"fluent-bit:3"}]}}},
             "status":{"replicas":2,"conditions":[{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}]}}
            """);
        deployment["apiVersion"] = apiVersion;
        deployment["kind"] = kind;
        return deployment;
    }

    private static JsonObject LiveNode() => Obj("""
        {"apiVersion":"v1","kind":"Node",
         "metadata":{"name":"pi-1","labels":{"kubernetes.io/arch":"arm64"}},
         "spec":{"podCIDR":"10.42.1.0/24","podCIDRs":["10.42.1.0/24"],
                 "taints":[{"key":"old","value":"x","effect":"NoSchedule"},{"key":"other","effect":"PreferNoSchedule"}]},
         "status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True","reason":"KubeletReady"}],
                   "addresses":[{"type":"InternalIP","address":"192.168.1.20"},{"type":"Hostname","address":"pi-1"}]}}
        """);

    private static JsonObject Pod(string patch) => Strategic(LivePod(), patch, "v1", "Pod");

    private static JsonNode Container(JsonObject pod, string name, string listPath = "spec") =>
        Containers(pod, listPath).Single(c => c!["name"]!.GetValue<string>() == name)!;

    private static JsonArray Containers(JsonObject obj, string specPath = "spec")
    {
        JsonNode node = obj;
        foreach (var part in specPath.Split('.'))
        {
            node = node[part]!;
        }
        return node["containers"]!.AsArray();
    }

    private static string[] Names(JsonNode? list, string key = "name") =>
        [.. list!.AsArray().Select(e => e![key]!.ToString())];

    [Fact]
    public void Apply_changes_one_containers_image_with_setElementOrder()
    {
        var result = Pod("""
            {"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":true}\n"}},
             "spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],
                     "containers":[{"image":"nginx:1.27","name":"app"}]}}
            """);

        Assert.Equal(["app", "sidecar"], Names(result["spec"]!["containers"]));
        var expected = LivePod();
        expected["metadata"]!["annotations"]![LastApplied] = "{\"new\":true}\n";
        Container(expected, "app")["image"] = "nginx:1.27";
        AssertJson(expected.ToJsonString(), result);
    }

    [Fact]
    public void Apply_removes_an_env_var_with_patch_delete()
    {
        var result = Pod("""
            {"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],
                     "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"name":"app"}]}}
            """);
        AssertJson("""[{"name":"A","value":"1"}]""", Container(result, "app")["env"]);
        Assert.Equal("nginx:1.25", Container(result, "app")["image"]!.GetValue<string>());
    }

    [Fact]
    public void Apply_adds_an_env_var_where_setElementOrder_puts_it()
    {
        var result = Pod("""
            {"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],
                     "containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"NEW"},{"name":"B"}],
                                    "env":[{"name":"NEW","value":"x"}],"name":"app"}]}}
            """);
        AssertJson("""[{"name":"A","value":"1"},{"name":"NEW","value":"x"},{"name":"B","value":"2"}]""", Container(result, "app")["env"]);
    }

    [Fact]
    public void Apply_adds_and_reorders_containers()
    {
        var result = Pod("""
            {"spec":{"$setElementOrder/containers":[{"name":"init-like"},{"name":"sidecar"},{"name":"app"}],
                     "containers":[{"image":"alpine:3","name":"init-like"}]}}
            """);
        Assert.Equal(["init-like", "sidecar", "app"], Names(result["spec"]!["containers"]));
        AssertJson("""{"image":"alpine:3","name":"init-like"}""", Container(result, "init-like"));
    }

    [Fact]
    public void Apply_removes_a_container_and_its_field()
    {
        var result = Pod("""
            {"spec":{"$setElementOrder/containers":[{"name":"app"}],
                     "containers":[{"$patch":"delete","name":"sidecar"},{"name":"app","imagePullPolicy":null}]}}
            """);
        Assert.Equal(["app"], Names(result["spec"]!["containers"]));
        Assert.False(Container(result, "app").AsObject().ContainsKey("imagePullPolicy"));
    }

    [Fact]
    public void Element_missing_from_setElementOrder_keeps_its_live_position()
    {
        // "injected" is only on the server, between the two the patch names.
        var pod = Obj("""{"spec":{"containers":[{"name":"a"},{"name":"injected"},{"name":"b"}]}}""");
        var result = Strategic(pod, """
            {"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b","image":"x"}]}}
            """, "v1", "Pod");
        Assert.Equal(["a", "injected", "b"], Names(result["spec"]!["containers"]));
    }

    [Fact]
    public void Without_setElementOrder_a_new_element_goes_before_the_servers_remaining_ones()
    {
        // Upstream's order when no $setElementOrder is sent (kubectl patch by hand): patch items first unless the
        // live list places a server-only element before them.
        var result = Pod("""{"spec":{"containers":[{"name":"redis","image":"redis:7"}]}}""");
        Assert.Equal(["redis", "app", "sidecar"], Names(result["spec"]!["containers"]));

        var changed = Pod("""{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}""");
        Assert.Equal(["app", "sidecar"], Names(changed["spec"]!["containers"]));
        Assert.Equal("busybox:1.37", Container(changed, "sidecar")["image"]!.GetValue<string>());
    }

    [Fact]
    public void Label_add_and_remove()
    {
        var added = Pod("""{"metadata":{"labels":{"version":"2"}}}""");
        AssertJson("""{"app":"web","tier":"front","version":"2"}""", added["metadata"]!["labels"]);

        var removed = Pod("""{"metadata":{"labels":{"tier":null}}}""");
        AssertJson("""{"app":"web"}""", removed["metadata"]!["labels"]);
    }

    [Fact]
    public void Null_for_a_missing_key_is_ignored_and_nulls_inside_new_values_dropped()
    {
        var pod = Obj("""{"metadata":{"name":"web"}}""");
        var result = Strategic(pod, """{"metadata":{"labels":{"gone":null},"annotations":{"a":"1","b":null}}}""", "v1", "Pod");
        AssertJson("""{"metadata":{"name":"web","labels":{},"annotations":{"a":"1"}}}""", result);
    }

    [Fact]
    public void Last_applied_annotation_added_to_an_object_without_annotations()
    {
        var pod = LivePod();
        pod["metadata"]!.AsObject().Remove("annotations");
        var result = Strategic(pod, """{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\"}\n"}}}""", "v1", "Pod");
        AssertJson("""{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\"}\n"}""", result["metadata"]!["annotations"]);
        AssertJson(pod["metadata"]!["labels"]!.ToJsonString(), result["metadata"]!["labels"]);
    }

    [Fact]
    public void Ports_merge_by_numeric_containerPort()
    {
        var result = Pod("""
            {"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"name":"http"},{"containerPort":443,"protocol":"TCP"}]}]}}
            """);
        AssertJson("""[{"containerPort":80,"protocol":"TCP","name":"http"},{"containerPort":443,"protocol":"TCP"}]""",
            Container(result, "app")["ports"]);
    }

    [Fact]
    public void Volume_source_switched_with_retainKeys()
    {
        var result = Pod("""
            {"spec":{"$setElementOrder/volumes":[{"name":"data"}],
                     "volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"web-config"},"name":"data"}]}}
            """);
        AssertJson("""[{"name":"data","configMap":{"name":"web-config"}}]""", result["spec"]!["volumes"]);
    }

    [Fact]
    public void Status_conditions_merge_by_type()
    {
        var result = Pod("""{"status":{"conditions":[{"type":"Ready","status":"False","reason":"ContainersNotReady"}]}}""");
        AssertJson("""[{"type":"Initialized","status":"True"},{"type":"Ready","status":"False","reason":"ContainersNotReady"}]""",
            result["status"]!["conditions"]);
    }

    [Fact]
    public void Atomic_lists_are_replaced_whole()
    {
        var result = Pod("""
            {"spec":{"tolerations":[{"key":"edge","operator":"Exists"}],
                     "containers":[{"name":"sidecar","args":["sleep","60"]}]}}
            """);
        AssertJson("""[{"key":"edge","operator":"Exists"}]""", result["spec"]!["tolerations"]);
        AssertJson("""["sleep","60"]""", Container(result, "sidecar")["args"]);
    }

    [Fact]
    public void Patch_replace_on_a_map_and_on_a_list()
    {
        var labels = Pod("""{"metadata":{"labels":{"$patch":"replace","only":"this"}}}""");
        AssertJson("""{"only":"this"}""", labels["metadata"]!["labels"]);

        var containers = Pod("""{"spec":{"containers":[{"$patch":"replace"},{"name":"solo","image":"alpine:3","env":null}]}}""");
        AssertJson("""[{"name":"solo","image":"alpine:3"}]""", containers["spec"]!["containers"]);
    }

    [Fact]
    public void Patch_delete_on_a_map_empties_it()
    {
        var result = Pod("""{"metadata":{"labels":{"$patch":"delete"}}}""");
        AssertJson("{}", result["metadata"]!["labels"]);
    }

    [Fact]
    public void Finalizers_merge_as_a_set()
    {
        var pod = Obj("""{"metadata":{"name":"web","finalizers":["a.io/one","b.io/two"]}}""");

        var added = Strategic(pod, """{"metadata":{"finalizers":["b.io/two","c.io/three"]}}""", "v1", "Pod");
        Assert.Equal(3, added["metadata"]!["finalizers"]!.AsArray().Count);
        Assert.Equal(["a.io/one", "b.io/two", "c.io/three"], added["metadata"]!["finalizers"]!.AsArray().Select(f => f!.ToString()).Order());

        var ordered = Strategic(pod, """
            {"metadata":{"$setElementOrder/finalizers":["a.io/one","b.io/two","c.io/three"],"finalizers":["c.io/three"]}}
            """, "v1", "Pod");
        AssertJson("""["a.io/one","b.io/two","c.io/three"]""", ordered["metadata"]!["finalizers"]);

        var removed = Strategic(pod, """
            {"metadata":{"$setElementOrder/finalizers":["b.io/two"],"$deleteFromPrimitiveList/finalizers":["a.io/one"]}}
            """, "v1", "Pod");
        AssertJson("""["b.io/two"]""", removed["metadata"]!["finalizers"]);
    }

    [Fact]
    public void Owner_references_merge_by_uid()
    {
        var pod = Obj("""{"metadata":{"ownerReferences":[{"uid":"1","kind":"ReplicaSet","name":"web-1"}]}}""");
        var result = Strategic(pod, """{"metadata":{"ownerReferences":[{"uid":"1","controller":true},{"uid":"2","kind":"Foo","name":"f"}]}}""", "v1", "Pod");
        Assert.Equal(["1", "2"], Names(result["metadata"]!["ownerReferences"], "uid").Order());
        Assert.True(result["metadata"]!["ownerReferences"]!.AsArray().Single(o => o!["uid"]!.ToString() == "1")!["controller"]!.GetValue<bool>());
    }

    [Fact]
    public void Kubectl_set_image_on_a_deployment()
    {
        var result = Strategic(LiveDeployment(), """
            {"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"log"}],
                                         "containers":[{"image":"nginx:1.27","name":"app"}]}}}}
            """, "apps/v1", "Deployment");
        var expected = LiveDeployment();
        Container(expected, "app", "spec.template.spec")["image"] = "nginx:1.27";
        AssertJson(expected.ToJsonString(), result);
    }

    [Theory]
    [InlineData("apps/v1", "Deployment")]
    [InlineData("apps/v1", "ReplicaSet")]
    [InlineData("apps/v1", "DaemonSet")]
    [InlineData("apps/v1", "StatefulSet")]
    [InlineData("batch/v1", "Job")]
    [InlineData("v1", "ReplicationController")]
    public void Pod_template_containers_merge_by_name_in_every_workload(string apiVersion, string kind)
    {
        var result = Strategic(LiveDeployment(apiVersion, kind), """
            {"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"DEBUG","value":"1"}]}]}}}}
            """, apiVersion, kind);
        Assert.Equal(["app", "log"], Names(Containers(result, "spec.template.spec")));
        Assert.Equal(["DEBUG", "MODE"], Names(Container(result, "app", "spec.template.spec")["env"]));
        Assert.Equal("nginx:1.25", Container(result, "app", "spec.template.spec")["image"]!.GetValue<string>());
    }

    [Fact]
    public void Cronjob_job_template_pods_merge_by_name()
    {
        var cronJob = Obj("""
            {"apiVersion":"batch/v1","kind":"CronJob","spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{
              "containers":[{"name":"job","image":"busybox:1.36","env":[{"name":"A","value":"1"}]}]}}}}}}
            """);
        var result = Strategic(cronJob, """
            {"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"job","image":"busybox:1.37"}]}}}}}}
            """, "batch/v1", "CronJob");
        var container = result["spec"]!["jobTemplate"]!["spec"]!["template"]!["spec"]!["containers"]![0]!;
        AssertJson("""{"name":"job","image":"busybox:1.37","env":[{"name":"A","value":"1"}]}""", container);
    }

    [Fact]
    public void Replicas_change()
    {
        var result = Strategic(LiveDeployment(), """{"spec":{"replicas":5}}""", "apps/v1", "Deployment");
        var expected = LiveDeployment();
        expected["spec"]!["replicas"] = 5;
        AssertJson(expected.ToJsonString(), result);
    }

    [Fact]
    public void Kubectl_rollout_restart()
    {
        var result = Strategic(LiveDeployment(), """
            {"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-06-01T10:00:00Z"}}}}}
            """, "apps/v1", "Deployment");
        AssertJson("""{"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-06-01T10:00:00Z"}}""",
            result["spec"]!["template"]!["metadata"]);
    }

    [Fact]
    public void Deployment_strategy_switched_with_retainKeys()
    {
        var result = Strategic(LiveDeployment(), """
            {"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}}
            """, "apps/v1", "Deployment");
        AssertJson("""{"type":"Recreate"}""", result["spec"]!["strategy"]);
    }

    [Fact]
    public void Deployment_status_conditions_merge_by_type()
    {
        var result = Strategic(LiveDeployment(), """
            {"status":{"conditions":[{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]}}
            """, "apps/v1", "Deployment");
        AssertJson("""[{"type":"Available","status":"True"},{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]""",
            result["status"]!["conditions"]);
    }

    [Fact]
    public void Kubectl_taint_replaces_the_node_taints()
    {
        // spec.taints has no patchStrategy upstream: kubectl taint sends the whole new list.
        var result = Strategic(LiveNode(), """
            {"spec":{"taints":[{"effect":"NoSchedule","key":"old","value":"x"},{"effect":"NoSchedule","key":"dedicated","value":"edge"}]}}
            """, "v1", "Node");
        AssertJson("""[{"effect":"NoSchedule","key":"old","value":"x"},{"effect":"NoSchedule","key":"dedicated","value":"edge"}]""",
            result["spec"]!["taints"]);

        var cleared = Strategic(LiveNode(), """{"spec":{"taints":null}}""", "v1", "Node");
        Assert.False(cleared["spec"]!.AsObject().ContainsKey("taints"));
        Assert.Equal("10.42.1.0/24", cleared["spec"]!["podCIDR"]!.GetValue<string>());
    }

    [Fact]
    public void Kubectl_cordon()
    {
        var result = Strategic(LiveNode(), """{"spec":{"unschedulable":true}}""", "v1", "Node");
        Assert.True(result["spec"]!["unschedulable"]!.GetValue<bool>());
        Assert.Equal(2, result["spec"]!["taints"]!.AsArray().Count);
    }

    [Fact]
    public void Node_status_conditions_and_addresses_merge_by_type()
    {
        var result = Strategic(LiveNode(), """
            {"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}],
                       "addresses":[{"type":"InternalIP","address":"192.168.1.21"}]}}
            """, "v1", "Node");
        AssertJson("""[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"False","reason":"KubeletNotReady"}]""",
            result["status"]!["conditions"]);
        AssertJson("""[{"type":"InternalIP","address":"192.168.1.21"},{"type":"Hostname","address":"pi-1"}]""",
            result["status"]!["addresses"]);
    }

    [Fact]
    public void Unknown_kind_merges_maps_and_replaces_lists_with_directives_honoured()
    {
        var widget = Obj("""
            {"apiVersion":"example.com/v1","kind":"Widget",
             "metadata":{"name":"w","finalizers":["a"]},
             "spec":{"size":1,"containers":[{"name":"a","image":"x"},{"name":"b"}],"extra":{"k":"v","j":"w"}}}
            """);
        var result = Strategic(widget, """
            {"metadata":{"finalizers":["b"]},
             "spec":{"size":null,"containers":[{"name":"a","image":"y"}],"extra":{"$patch":"replace","n":"m"},"new":{"x":null,"y":1}}}
            """, "example.com/v1", "Widget");
        AssertJson("""
            {"apiVersion":"example.com/v1","kind":"Widget",
             "metadata":{"name":"w","finalizers":["b"]},
             "spec":{"containers":[{"name":"a","image":"y"}],"extra":{"n":"m"},"new":{"y":1}}}
            """, result);
    }

    [Theory]
    [InlineData("""{"spec":{"containers":[{"$patch":"delete","image":"x"}]}}""", "does not contain declared merge key: name")]
    [InlineData("""{"spec":{"containers":[{"image":"x"}]}}""", "does not contain declared merge key: name")]
    [InlineData("""{"spec":{"containers":[{"$patch":"merge"}]}}""", "merging lists cannot yet be specified in the patch")]
    [InlineData("""{"spec":{"containers":[{"$patch":"bogus","name":"app"}]}}""", "unknown patch type: bogus in map")]
    [InlineData("""{"metadata":{"labels":{"$patch":"bogus"}}}""", "unknown patch type: bogus in map")]
    [InlineData("""{"spec":{"$setElementOrder/containers":{"name":"app"}}}""", "invalid patch format of setElementOrder list")]
    [InlineData("""{"spec":{"$setElementOrder/containers":[{"image":"x"}]}}""", "invalid patch format of setElementOrder list")]
    [InlineData("""{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"name":"sidecar","image":"x"}]}}""", "doesn't match $setElementOrder list")]
    [InlineData("""{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"app"}],"containers":[{"name":"app"},{"name":"sidecar"}]}}""", "doesn't match $setElementOrder list")]
    [InlineData("""{"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}""", "invalid patch format of primitive list")]
    [InlineData("""{"spec":{"volumes":[{"$retainKeys":"name","name":"data"}]}}""", "invalid patch format of retainKeys")]
    [InlineData("""{"spec":{"volumes":[{"$retainKeys":["name"],"name":"data","hostPath":{"path":"/x"}}]}}""", "patch content doesn't match retainKeys list")]
    [InlineData("""{"spec":{"containers":[["app"]]}}""", "lists of lists are not supported")]
    [InlineData("""{"spec":{"containers":["app"]}}""", "list element types are not identical")]
    public void Malformed_patches_fail(string patch, string message)
    {
        var pod = LivePod();
        var patchObject = Obj(patch);
        var error = Fails(pod, patchObject, () => Patches.ApplyStrategicMergePatch(pod, patchObject, "v1", "Pod"));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Top_level_patch_replace_replaces_the_object()
    {
        var result = Pod("""{"$patch":"replace","apiVersion":"v1","kind":"Pod","metadata":{"name":"other"}}""");
        AssertJson("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"other"}}""", result);
    }
}
