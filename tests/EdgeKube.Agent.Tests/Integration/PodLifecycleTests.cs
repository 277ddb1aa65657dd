using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>Images, restart policies, probes and termination, on the real containerd.</summary>
[Collection("containerd")]
public sealed class PodLifecycleTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    [Fact]
    public async Task Images_are_pulled_as_the_pull_policy_says()
    {
        var registryImage = ContainerdFixture.RegistryImage;
        Agent.WriteManifest("pull.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: pull}
            spec:
              containers:
              - {name: always, image: "{{registryImage}}", imagePullPolicy: Always, command: [sleep, "3600"]}
            """);
        Agent.WriteManifest("never.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: never}
            spec:
              containers:
              - {name: app, image: "127.0.0.1:5000/edgekube/not-here:v9", imagePullPolicy: Never}
            """);
        Agent.WriteManifest("missing.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: missing}
            spec:
              containers:
              - {name: app, image: "127.0.0.1:5000/edgekube/not-here:v9"}
            """);
        var pulled = await Agent.WaitForPodAsync("pull", IsRunning, what: "Running");
        // As kubelet on containerd: a pulled image is identified by its repository digest.
        Assert.StartsWith(registryImage.Replace(":v1", "@sha256:", StringComparison.Ordinal), Status(pulled, "always").ImageID);
        Assert.NotNull(await Containerd.Runtime.ImageStatusAsync(registryImage, CancellationToken.None));

        var never = await Agent.WaitForPodAsync("never", p => Status(p, "app").State?.Waiting?.Reason == "ErrImageNeverPull", what: "ErrImageNeverPull");
        Assert.Equal("Pending", never.Status.Phase);

        await Agent.WaitForPodAsync("missing", p => Status(p, "app").State?.Waiting?.Reason == "ErrImagePull", what: "ErrImagePull");
        var backoff = await Agent.WaitForPodAsync("missing", p => Status(p, "app").State?.Waiting?.Reason == "ImagePullBackOff", what: "ImagePullBackOff");
        Assert.Equal("Back-off pulling image \"127.0.0.1:5000/edgekube/not-here:v9\"", Status(backoff, "app").State.Waiting.Message);
    }

    [Fact]
    public async Task Restart_policies_decide_what_happens_when_containers_exit()
    {
        Agent.WriteManifest("crash.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: crash}
            spec:
              containers: [{name: app, image: {{Image}}, command: [sh, -c, "exit 3"]}]
            """);
        Agent.WriteManifest("done.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: done}
            spec:
              restartPolicy: OnFailure
              containers: [{name: app, image: {{Image}}, command: [sh, -c, "exit 0"]}]
            """);
        Agent.WriteManifest("failed.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: failed}
            spec:
              restartPolicy: Never
              containers: [{name: app, image: {{Image}}, command: [sh, -c, "exit 7"]}]
            """);

        var crash = await Agent.WaitForPodAsync("crash", p => Status(p, "app").State?.Waiting?.Reason == "CrashLoopBackOff", what: "CrashLoopBackOff");
        var cs = Status(crash, "app");
        Assert.True(cs.RestartCount >= 1);
        Assert.Equal(3, cs.LastState.Terminated.ExitCode);
        Assert.Equal("Error", cs.LastState.Terminated.Reason);
        Assert.Matches("^back-off (10|20)s restarting failed container=app pod=crash-test-node_default", cs.State.Waiting.Message);
        Assert.Equal("Running", crash.Status.Phase);

        var done = await Agent.WaitForPodAsync("done", p => p.Status?.Phase == "Succeeded", what: "Succeeded");
        Assert.Equal("Completed", Status(done, "app").State.Terminated.Reason);
        Assert.Equal(0, Status(done, "app").RestartCount);

        var failed = await Agent.WaitForPodAsync("failed", p => p.Status?.Phase == "Failed", what: "Failed");
        Assert.Equal(7, Status(failed, "app").State.Terminated.ExitCode);
        Assert.Single(await ContainersOf(failed, "app"));
    }

    [Fact]
    public async Task Probes_drive_readiness_and_restarts()
    {
        Agent.WriteManifest("probes.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: probes}
            spec:
              containers:
              - name: web
                image: {{Image}}
                command: [sh, -c, "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
                ports: [{name: http, containerPort: 8080}]
                startupProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, failureThreshold: 30}
                readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
              - name: flaky
                image: {{Image}}
                command: [sh, -c, "touch /tmp/alive; sleep 3; rm /tmp/alive; exec sleep 3600"]
                livenessProbe: {exec: {command: [cat, /tmp/alive]}, periodSeconds: 1, failureThreshold: 2}
            """);
        var ready = await Agent.WaitForPodAsync("probes", p => Status(p, "web").Ready, what: "web ready");
        Assert.True(Status(ready, "web").Started);

        var restarted = await Agent.WaitForPodAsync("probes", p => Status(p, "flaky").RestartCount >= 1, TimeSpan.FromSeconds(60), "liveness restart");
        Assert.NotNull(Status(restarted, "flaky").LastState.Terminated);
        Assert.Contains("failed liveness probe", Agent.Log);
        Assert.Equal(0, Status(restarted, "web").RestartCount);
    }

    [Fact]
    public async Task A_failing_readiness_probe_keeps_the_pod_not_ready()
    {
        Agent.WriteManifest("unready.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: unready}
            spec:
              containers:
              - name: app
                image: {{Image}}
                command: [sleep, "3600"]
                readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
            """);
        var pod = await Agent.WaitForPodAsync("unready", IsRunning, what: "Running");
        await Task.Delay(TimeSpan.FromSeconds(3));
        pod = (await Agent.PodAsync("unready"))!;
        Assert.False(IsReady(pod));
        Assert.Equal("ContainersNotReady", pod.Status.Conditions.Single(c => c.Type == "Ready").Reason);
        Assert.False(Status(pod, "app").Ready);
    }

    [Fact]
    public async Task Removing_a_pod_sends_sigterm_and_honours_the_grace_period()
    {
        var host = Directory.CreateTempSubdirectory("edgekube-grace-").FullName;
        Agent.WriteManifest("grace.yaml", $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: grace}
            spec:
              terminationGracePeriodSeconds: 3
              volumes: [{name: out, hostPath: {path: {{host}} } }]
              containers:
              - name: polite
                image: {{Image}}
                command: [sh, -c, "trap 'echo got-term > /out/polite; exit 0' TERM; while true; do sleep 0.2; done"]
                volumeMounts: [{name: out, mountPath: /out}]
              - name: stubborn
                image: {{Image}}
                command: [sh, -c, "trap 'echo ignoring >> /out/stubborn' TERM; while true; do sleep 0.2; done"]
                volumeMounts: [{name: out, mountPath: /out}]
            """);
        var pod = await Agent.WaitForPodAsync("grace", IsRunning, what: "Running");
        var started = DateTime.UtcNow;
        Agent.RemoveManifest("grace.yaml");
        await Agent.WaitForPodGoneAsync("grace");
        await Eventually.Until(async () => (await SandboxesOf(pod)).Count == 0, TimeSpan.FromSeconds(30), () => "sandbox not removed");
        var elapsed = DateTime.UtcNow - started;
        Assert.Equal("got-term\n", File.ReadAllText(Path.Combine(host, "polite")));
        Assert.StartsWith("ignoring", File.ReadAllText(Path.Combine(host, "stubborn")));
        Assert.True(elapsed >= TimeSpan.FromSeconds(3), $"the stubborn container was killed before its grace period ({elapsed})");
        Assert.Empty(await ContainersOf(pod));
        Directory.Delete(host, recursive: true);
    }
}
