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

    /// <summary>A deployment of <paramref name="replicas"/> pods, one surge pod and none unavailable; <paramref name="probe"/> adds a readiness probe that never passes.</summary>
    private string SplitDeployment(int replicas, bool probe) => $$$"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: split}
        spec:
          replicas: {{{replicas}}}
          selector: {matchLabels: {app: split}}
          strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
          template:
            metadata: {labels: {app: split}}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: app
                image: "{{{Image}}}"
                command: [sh, -c, "{{{Forever}}}"]
        {{{(probe ? "        readinessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1}" : string.Empty)}}}
        """;

    /// <summary>spec.replicas of the split deployment's ReplicaSets as <c>kubectl get rs</c> prints them (DESIRED), by revision.</summary>
    private async Task<string> DesiredByRevisionAsync()
    {
        var rows = (await Kubectl("get", "rs", "-l", "app=split", "-o", "custom-columns=REV:.metadata.annotations.deployment\\.kubernetes\\.io/revision,NAME:.metadata.name", "--no-headers"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(r => r.Split(' ', StringSplitOptions.RemoveEmptyEntries)).OrderBy(r => r[0], StringComparer.Ordinal).ToList();
        var table = await Kubectl("get", "rs", "-l", "app=split");
        return string.Join(" ", rows.Select(r => r[0] + ":" + (System.Text.RegularExpressions.Regex.Match(table, $@"(?m)^{r[1]}\s+(\d+)\s") is { Success: true } m ? m.Groups[1].Value : "?")));
    }

    private async Task UntilSplitAsync(string expected)
    {
        var last = string.Empty;
        await Eventually.Until(async () => (last = await DesiredByRevisionAsync()) == expected, TimeSpan.FromSeconds(120),
            () => $"replica sets (revision:desired) not {expected} but {last}{Diagnostics}");
    }

    [Fact]
    public async Task Scaling_mid_rollout_splits_the_replica_sets_in_proportion_and_a_paused_rollout_waits()
    {
        await ApplyAsync(SplitDeployment(2, probe: false));
        Assert.Contains("successfully rolled out", await Kubectl("rollout", "status", "deployment/split", "--timeout=120s"));

        // A template whose pods never become ready: the rollout stops at one surge pod beside the two old ones.
        await ApplyAsync(SplitDeployment(2, probe: true));
        await UntilSplitAsync("1:2 2:1");
        Assert.Matches(@"(?m)^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\s*$", await Kubectl("get", "rs", "-l", "app=split"));

        // Scaled to 5 mid-rollout: 6 (5 + surge) against the 3 the sets were sized for, shared 4 and 2.
        Assert.Contains("deployment.apps/split scaled", await Kubectl("scale", "deployment", "split", "--replicas", "5"));
        await UntilSplitAsync("1:4 2:2");
        Assert.Equal("5 5", await Jsonpath("rs", "{.items[*].metadata.annotations.deployment\\.kubernetes\\.io/desired-replicas}", "-l", "app=split"));
        Assert.Equal("6 6", await Jsonpath("rs", "{.items[*].metadata.annotations.deployment\\.kubernetes\\.io/max-replicas}", "-l", "app=split"));
        await Eventually.Until(async () => await Jsonpath("deploy/split", "{.status.replicas}") == "6", TimeSpan.FromSeconds(120), () => "the sets never had their 6 pods" + Diagnostics);

        // Paused: a new template starts nothing, but scaling still shares the change (3 of 6: 2 and 1).
        Assert.Contains("deployment.apps/split paused", await Kubectl("rollout", "pause", "deployment/split"));
        Assert.Contains("image updated", await Kubectl("set", "image", "deployment/split", "app=" + ContainerdFixture.RegistryImage));
        await Kubectl("patch", "deployment", "split", "--type=json", "-p", "[{\"op\":\"remove\",\"path\":\"/spec/template/spec/containers/0/readinessProbe\"}]");
        await Eventually.Until(async () => await Jsonpath("deploy/split", "{.status.conditions[?(@.type==\"Progressing\")].reason}") == "DeploymentPaused"
            && await Jsonpath("deploy/split", "{.status.observedGeneration}") == await Jsonpath("deploy/split", "{.metadata.generation}"),
            TimeSpan.FromSeconds(60), () => "the pause was never observed" + Diagnostics);
        Assert.Contains("deployment.apps/split scaled", await Kubectl("scale", "deployment", "split", "--replicas", "2"));
        await UntilSplitAsync("1:2 2:1");
        Assert.Equal(2, (await Jsonpath("rs", "{.items[*].metadata.name}", "-l", "app=split")).Split(' ').Length);

        // Resumed: the new template's set takes over.
        Assert.Contains("deployment.apps/split resumed", await Kubectl("rollout", "resume", "deployment/split"));
        Assert.Contains("successfully rolled out", await Kubectl("rollout", "status", "deployment/split", "--timeout=120s"));
        await UntilSplitAsync("1:0 2:0 3:2");
        await UntilAsync(async () => await Jsonpath("pods", "{.items[*].spec.containers[0].image}", "-l", "app=split") == ContainerdFixture.RegistryImage + " " + ContainerdFixture.RegistryImage,
            "the old pods never went");
        Assert.Contains("deployment.apps \"split\" deleted", await Kubectl("delete", "deployment", "split"));
    }

    [Fact]
    public async Task Job_pods_are_tracked_with_a_finalizer_and_a_deleted_pod_still_counts()
    {
        await ApplyAsync($$$"""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: tracked}
            spec:
              backoffLimit: 3
              template:
                spec:
                  restartPolicy: Never
                  terminationGracePeriodSeconds: 2
                  containers:
                  - name: work
                    image: "{{{Image}}}"
                    command: [sh, -c, "{{{Forever}}}"]
            """);
        await UntilAsync(async () => await Jsonpath("pods", "{.items[*].status.phase}", "-l", "job-name=tracked") == "Running", "the job's pod never ran");
        var first = await Jsonpath("pods", "{.items[0].metadata.name}", "-l", "job-name=tracked");
        Assert.Equal("[\"batch.kubernetes.io/job-tracking\"]", await Jsonpath("pod/" + first, "{.metadata.finalizers}"));

        // Deleted while running: counted as failed, released, gone once its node stopped it; a successor follows the back-off.
        Assert.Contains($"pod \"{first}\" deleted", await Kubectl("delete", "pod", first, "--wait=false"));
        await UntilAsync(async () => await Jsonpath("job/tracked", "{.status.failed}") == "1", "the deleted pod was not counted as failed");
        await WaitForPodGoneAsync(first);
        Assert.Equal("{}", await Jsonpath("job/tracked", "{.status.uncountedTerminatedPods}"));
        await UntilAsync(async () => (await Jsonpath("pods", "{.items[*].metadata.name}", "-l", "job-name=tracked")) is { Length: > 0 } n && n != first,
            "no successor pod after the back-off");
        var second = await Jsonpath("pods", "{.items[0].metadata.name}", "-l", "job-name=tracked");
        Assert.Equal("[\"batch.kubernetes.io/job-tracking\"]", await Jsonpath("pod/" + second, "{.metadata.finalizers}"));

        // Deleting the job lets its pods go too.
        Assert.Contains("job.batch \"tracked\" deleted", await Kubectl("delete", "job", "tracked"));
        await WaitForPodGoneAsync(second);

        // A job that completes: each pod released once counted, the interim and final conditions.
        await ApplyAsync($$$"""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: quick}
            spec:
              completions: 2
              parallelism: 2
              template:
                spec:
                  restartPolicy: Never
                  containers:
                  - name: work
                    image: "{{{Image}}}"
                    command: [sh, -c, "echo done"]
            """);
        Assert.Contains("condition met", await Kubectl("wait", "--for=condition=complete", "job/quick", "--timeout=120s"));
        Assert.Equal("2", await Jsonpath("job/quick", "{.status.succeeded}"));
        Assert.Equal("SuccessCriteriaMet Complete", await Jsonpath("job/quick", "{.status.conditions[*].type}"));
        Assert.Equal("CompletionsReached", await Jsonpath("job/quick", "{.status.conditions[?(@.type==\"Complete\")].reason}"));
        Assert.Equal(string.Empty, await Jsonpath("pods", "{.items[*].metadata.finalizers}", "-l", "job-name=quick"));
        Assert.Matches(@"(?m)^quick\s+Complete\s+2/2\s+", await Kubectl("get", "jobs"));

        // The API keeps any pod its finalizers hold, after its node has stopped it, until the last one is removed.
        await ApplyAsync(PodYaml("held").Replace("  labels:", "  finalizers: [example.com/hold]\n  labels:", StringComparison.Ordinal));
        await WaitForPhaseAsync("held", "Running");
        await Kubectl("delete", "pod", "held", "--wait=false");
        await WaitForPhaseAsync("held", "Failed");
        Assert.Equal("0", await Jsonpath("pod/held", "{.metadata.deletionGracePeriodSeconds}"));
        // Its node removed it without a last status: kubelet's words for containers it cannot find any more.
        Assert.Matches(@"(?m)^held\s+0/1\s+ContainerStatusUnknown\s+", await Kubectl("get", "pod", "held"));
        var (code, output) = await Master.KubectlAsync("patch", "pod", "held", "--type=merge", "-p", "{\"metadata\":{\"finalizers\":[\"example.com/hold\",\"example.com/more\"]}}");
        Assert.NotEqual(0, code);
        Assert.Contains("no new finalizers can be added if the object is being deleted", output);
        await Kubectl("patch", "pod", "held", "--type=json", "-p", "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]");
        await WaitForPodGoneAsync("held");
    }

    [Fact]
    public async Task Indexed_jobs_give_each_pod_its_index_and_finished_jobs_expire()
    {
        await ApplyAsync($$$"""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: shards}
            spec:
              completions: 3
              parallelism: 3
              completionMode: Indexed
              ttlSecondsAfterFinished: 5
              template:
                spec:
                  restartPolicy: Never
                  containers:
                  - name: shard
                    image: "{{{Image}}}"
                    command: [sh, -c, "echo shard=$JOB_COMPLETION_INDEX host=$(hostname)"]
            """);
        Assert.Contains("condition met", await Kubectl("wait", "--for=condition=complete", "job/shards", "--timeout=120s"));
        Assert.Equal("0-2", await Jsonpath("job/shards", "{.status.completedIndexes}"));
        var one = await Jsonpath("pods", "{.items[0].metadata.name}", "-l", "batch.kubernetes.io/job-completion-index=1");
        Assert.StartsWith("shards-1-", one);
        Assert.Contains("shard=1 host=shards-1", await Kubectl("logs", one));

        // ttlSecondsAfterFinished: 5 s after it finished, the job and its pods are deleted.
        await UntilAsync(async () => (await Master.KubectlAsync("get", "job", "shards")).Output.Contains("NotFound", StringComparison.Ordinal), "the finished job never expired");
        await UntilAsync(async () => (await Master.KubectlAsync("get", "pods", "-l", "job-name=shards")).Output.Contains("No resources found"),
            "the expired job's pods stayed");
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
