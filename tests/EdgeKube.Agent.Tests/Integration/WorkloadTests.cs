using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// Deployments, ReplicaSets, DaemonSets, Jobs and namespaces through the real kubectl, on the real
/// edgekube-master with a real agent running the pods on the test containerd.
/// </summary>
[Collection("containerd")]
public sealed class WorkloadTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    private const string Forever = "trap 'exit 0' TERM; while true; do sleep 1; done";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        await WaitForNodeReadyAsync();
    }

    private Task<string> Kubectl(params string[] args) => Master.Kubectl(args);

    private async Task<string> Jsonpath(string what, string path, params string[] extra) =>
        (await Master.Kubectl(["get", what, "-o", "jsonpath=" + path, .. extra])).Trim();

    private Task UntilAsync(Func<Task<bool>> condition, string what) =>
        Eventually.Until(condition, TimeSpan.FromSeconds(120), () => what + Diagnostics);

    [Fact]
    public async Task A_deployment_is_created_scaled_updated_rolled_back_and_deleted_with_kubectl()
    {
        Assert.Contains("deployment.apps/web created", await Kubectl("create", "deployment", "web", "--image", Image, "--replicas", "2", "--", "sh", "-c", Forever));
        Assert.Contains("deployment \"web\" successfully rolled out", await Kubectl("rollout", "status", "deployment/web", "--timeout=120s"));
        Assert.Matches(@"(?m)^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s*$", await Kubectl("get", "deploy"));
        Assert.Matches(@"(?m)^web\s+2/2\s+2\s+2\s+", await Kubectl("get", "deploy", "web"));
        var firstRs = await Jsonpath("rs", "{.items[0].metadata.name}", "-l", "app=web");
        Assert.Matches(@"^web-[bcdfghjklmnpqrstvwxz2456789]+$", firstRs);
        Assert.Matches($@"(?m)^{firstRs}\s+2\s+2\s+2\s+", await Kubectl("get", "rs"));
        // The pods belong to the ReplicaSet, which belongs to the Deployment.
        Assert.Equal("ReplicaSet ReplicaSet", await Jsonpath("pods", "{.items[*].metadata.ownerReferences[0].kind}", "-l", "app=web"));
        Assert.Equal("Deployment", await Jsonpath("rs/" + firstRs, "{.metadata.ownerReferences[0].kind}"));
        Assert.Equal(Node + " " + Node, await Jsonpath("pods", "{.items[*].spec.nodeName}", "-l", "app=web"));

        Assert.Contains("deployment.apps/web scaled", await Kubectl("scale", "deployment", "web", "--replicas", "3"));
        await Kubectl("rollout", "status", "deployment/web", "--timeout=120s");
        Assert.Matches(@"(?m)^web\s+3/3\s+3\s+3\s+", await Kubectl("get", "deploy", "web"));
        Assert.Contains("replicaset.apps/" + firstRs + " scaled", await Kubectl("scale", "rs", firstRs, "--replicas", "3"));

        Assert.Contains("deployment.apps/web scaled", await Kubectl("scale", "deploy/web", "--replicas=1"));
        await UntilAsync(async () => (await Jsonpath("pods", "{.items[*].metadata.name}", "-l", "app=web")).Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 1,
            "scaling down to 1 left other pods");

        Assert.Contains("deployment.apps/web image updated", await Kubectl("set", "image", "deployment/web", "busybox=" + ContainerdFixture.RegistryImage));
        Assert.Contains("successfully rolled out", await Kubectl("rollout", "status", "deployment/web", "--timeout=120s"));
        Assert.Equal("2", await Jsonpath("deploy/web", "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"));
        var secondRs = await Jsonpath("rs", "{.items[?(@.spec.replicas==1)].metadata.name}", "-l", "app=web");
        Assert.NotEqual(firstRs, secondRs);
        Assert.Equal(ContainerdFixture.RegistryImage, await Jsonpath("rs/" + secondRs, "{.spec.template.spec.containers[0].image}"));
        Assert.Equal("0", await Jsonpath("rs/" + firstRs, "{.spec.replicas}"));
        await UntilAsync(async () => await Jsonpath("pods", "{.items[*].status.containerStatuses[0].image}", "-l", "app=web") == ContainerdFixture.RegistryImage,
            "the old pod never went");
        var history = await Kubectl("rollout", "history", "deployment/web");
        Assert.Matches(@"(?m)^1\s", history);
        Assert.Matches(@"(?m)^2\s", history);

        Assert.Contains("deployment.apps/web rolled back", await Kubectl("rollout", "undo", "deployment/web"));
        Assert.Contains("successfully rolled out", await Kubectl("rollout", "status", "deployment/web", "--timeout=120s"));
        Assert.Equal(Image, await Jsonpath("deploy/web", "{.spec.template.spec.containers[0].image}"));
        // The first template's ReplicaSet is reused under revision 3.
        Assert.Equal("3", await Jsonpath("rs/" + firstRs, "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"));
        Assert.Equal("1", await Jsonpath("rs/" + firstRs, "{.spec.replicas}"));
        Assert.Equal("3", await Jsonpath("deploy/web", "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"));

        var all = await Kubectl("get", "deploy,rs,ds,jobs");
        Assert.Contains("deployment.apps/web", all);
        Assert.Contains("replicaset.apps/" + firstRs, all);
        Assert.Contains("replicaset.apps/" + secondRs, all);
        Assert.Contains("deployment.apps/web", await Kubectl("get", "all"));

        // Bad input gets Kubernetes' answer, and nothing else changes.
        var (code, output) = await Master.KubectlAsync("scale", "deployment", "web", "--replicas=-1");
        Assert.NotEqual(0, code);
        (code, output) = await Master.KubectlAsync("create", "deployment", "Bad_Name", "--image", Image);
        Assert.NotEqual(0, code);
        Assert.Contains("a lowercase RFC 1123 subdomain", output);

        // Deleting the deployment takes its ReplicaSets and their pods with it.
        Assert.Contains("deployment.apps \"web\" deleted", await Kubectl("delete", "deployment", "web"));
        await UntilAsync(async () => (await Master.KubectlAsync("get", "rs,pods", "-l", "app=web")).Output.Contains("No resources found"),
            "the deployment's replica sets and pods were not deleted with it");
    }

    [Fact]
    public async Task DaemonSets_jobs_and_namespaces_work_with_kubectl()
    {
        Assert.Contains("namespace/sensors created", await Kubectl("create", "namespace", "sensors"));
        await ApplyAsync($$$"""
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: collector, namespace: sensors}
            spec:
              selector: {matchLabels: {app: collector}}
              template:
                metadata: {labels: {app: collector}}
                spec:
                  terminationGracePeriodSeconds: 2
                  containers:
                  - name: collector
                    image: "{{{Image}}}"
                    command: [sh, -c, "{{{Forever}}}"]
            """);
        await UntilAsync(async () => (await Master.KubectlAsync("get", "ds", "collector", "-n", "sensors")).Output is var o && System.Text.RegularExpressions.Regex.IsMatch(o, @"(?m)^collector\s+1\s+1\s+1\s+1\s+1\s+"),
            "the daemon set never had its pod ready on the node");
        Assert.Matches(@"(?m)^NAME\s+DESIRED\s+CURRENT\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+NODE SELECTOR\s+AGE", await Kubectl("get", "ds", "-n", "sensors"));
        Assert.Equal(Node, await Jsonpath("pods", "{.items[0].spec.nodeName}", "-n", "sensors", "-l", "app=collector"));
        Assert.Contains("daemon set \"collector\" successfully rolled out", await Kubectl("rollout", "status", "ds/collector", "-n", "sensors", "--timeout=60s"));
        // Namespaces scope names: the default namespace has no daemon set.
        Assert.Contains("No resources found in default namespace", await Kubectl("get", "ds"));

        Assert.Contains("job.batch/once created", await Kubectl("create", "job", "once", "-n", "sensors", "--image", Image, "--", "sh", "-c", "echo measured 21.5"));
        Assert.Contains("condition met", await Kubectl("wait", "--for=condition=complete", "job/once", "-n", "sensors", "--timeout=120s"));
        Assert.Matches(@"(?m)^once\s+Complete\s+1/1\s+", await Kubectl("get", "jobs", "-n", "sensors"));
        Assert.Contains("measured 21.5", await Kubectl("logs", "job/once", "-n", "sensors"));

        await ApplyAsync($$$"""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: broken, namespace: sensors}
            spec:
              backoffLimit: 0
              template:
                spec:
                  restartPolicy: Never
                  containers:
                  - name: probe
                    image: "{{{Image}}}"
                    command: [sh, -c, "exit 3"]
            """);
        Assert.Contains("condition met", await Kubectl("wait", "--for=condition=failed", "job/broken", "-n", "sensors", "--timeout=120s"));
        Assert.Equal("BackoffLimitExceeded", await Jsonpath("job/broken", "{.status.conditions[?(@.type==\"Failed\")].reason}", "-n", "sensors"));
        Assert.Matches(@"(?m)^broken\s+Failed\s+0/1\s+", await Kubectl("get", "jobs", "-n", "sensors"));

        // --cascade=orphan leaves the deployment's replica set (and its pod) without an owner; --cascade=foreground
        // returns once the job's pods are gone.
        await Kubectl("create", "deployment", "keep", "-n", "sensors", "--image", Image, "--", "sh", "-c", Forever);
        await Kubectl("rollout", "status", "deployment/keep", "-n", "sensors", "--timeout=120s");
        Assert.Contains("deployment.apps \"keep\" deleted", await Kubectl("delete", "deployment", "keep", "-n", "sensors", "--cascade=orphan", "--timeout=60s"));
        Assert.StartsWith("keep-", await Jsonpath("rs", "{.items[*].metadata.name}", "-n", "sensors", "-l", "app=keep"));
        Assert.Equal(string.Empty, await Jsonpath("rs", "{.items[*].metadata.ownerReferences}", "-n", "sensors", "-l", "app=keep"));
        Assert.Contains("job.batch \"once\" deleted", await Kubectl("delete", "job", "once", "-n", "sensors", "--cascade=foreground", "--timeout=120s"));
        Assert.Equal(string.Empty, await Jsonpath("pods", "{.items[*].metadata.name}", "-n", "sensors", "-l", "job-name=once"));

        var all = await Kubectl("get", "deploy,rs,ds,jobs", "-n", "sensors");
        Assert.Contains("daemonset.apps/collector", all);
        Assert.Contains("replicaset.apps/keep-", all);
        Assert.Contains("job.batch/broken", all);

        // Deleting the namespace removes what is in it, then the namespace itself.
        Assert.Contains("namespace \"sensors\" deleted", await Kubectl("delete", "namespace", "sensors", "--timeout=120s"));
        Assert.Contains("NotFound", (await Master.KubectlAsync("get", "namespace", "sensors")).Output);
        Assert.DoesNotContain("sensors", await Kubectl("get", "pods", "-A"));
    }
}
