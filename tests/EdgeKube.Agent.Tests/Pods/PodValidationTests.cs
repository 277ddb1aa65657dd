using EdgeKube.Agent.Pods;

namespace EdgeKube.Agent.Tests.Pods;

public class PodValidationTests
{
    [Theory]
    [InlineData("busybox", "Always")]
    [InlineData("busybox:latest", "Always")]
    [InlineData("busybox:1.36", "IfNotPresent")]
    [InlineData("127.0.0.1:5000/busybox", "Always")]
    [InlineData("127.0.0.1:5000/busybox:v1", "IfNotPresent")]
    [InlineData("busybox@sha256:0123", "IfNotPresent")]
    public void Pull_policy_defaults_from_the_tag_as_kubelet_does(string image, string expected) =>
        Assert.Equal(expected, PodValidation.DefaultPullPolicy(image));

    [Fact]
    public void Defaults_are_applied()
    {
        var pod = PodManifest.Parse("""
            apiVersion: v1
            kind: Pod
            metadata: {name: a}
            spec:
              containers:
              - name: c
                image: x:1
                readinessProbe: {httpGet: {port: 80}}
            """).Single();
        PodValidation.ApplyDefaults(pod);
        Assert.Equal("default", pod.Metadata.NamespaceProperty);
        Assert.Equal("Always", pod.Spec.RestartPolicy);
        Assert.Equal(30, pod.Spec.TerminationGracePeriodSeconds);
        var probe = pod.Spec.Containers[0].ReadinessProbe;
        Assert.Equal((1, 10, 1, 3, "/"), (probe.TimeoutSeconds, probe.PeriodSeconds, probe.SuccessThreshold, probe.FailureThreshold, probe.HttpGet.Path));
    }

    [Fact]
    public void Every_problem_is_reported()
    {
        var pod = PodManifest.Parse("""
            apiVersion: v1
            kind: Pod
            metadata: {name: Bad_Name}
            spec:
              restartPolicy: Sometimes
              volumes: [{name: cfg, configMap: {name: x}}]
              containers:
              - {name: c, image: ""}
              - {name: c, image: x:1, volumeMounts: [{name: nope, mountPath: /x}], ports: [{containerPort: 70000}]}
            """).Single();
        PodValidation.ApplyDefaults(pod);
        var errors = PodValidation.Validate(pod);
        Assert.Contains(errors, e => e.StartsWith("metadata.name: Invalid value \"Bad_Name\""));
        Assert.Contains(errors, e => e.StartsWith("spec.restartPolicy: Unsupported value"));
        Assert.Contains(errors, e => e.Contains("only emptyDir and hostPath volumes"));
        Assert.Contains(errors, e => e == "spec.containers[0].image: Required value");
        Assert.Contains(errors, e => e.StartsWith("spec.containers[1].name: Duplicate value"));
        Assert.Contains(errors, e => e.StartsWith("spec.containers[1].volumeMounts[0].name: Not found"));
        Assert.Contains(errors, e => e.StartsWith("spec.containers[1].ports[0].containerPort"));
    }

    [Fact]
    public void A_pod_without_containers_is_invalid()
    {
        var pod = PodManifest.Parse("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n").Single();
        PodValidation.ApplyDefaults(pod);
        Assert.Contains("spec.containers: Required value", PodValidation.Validate(pod));
    }
}
