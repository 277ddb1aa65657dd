using EdgeKube.Agent.Pods;
using k8s.Models;

namespace EdgeKube.Agent.Tests;

/// <summary>Builds defaulted, valid pods for tests from YAML.</summary>
public static class TestPods
{
    public static V1Pod FromYaml(string yaml, string? uid = null)
    {
        var pod = PodManifest.Parse(yaml).Single();
        PodValidation.ApplyDefaults(pod);
        Assert.Empty(PodValidation.Validate(pod));
        pod.Metadata.Uid = uid ?? pod.Metadata.Uid ?? Guid.NewGuid().ToString();
        return pod;
    }

    public static V1Pod Simple(string restartPolicy = "Always", string image = "busybox:1.0", string? uid = null) => FromYaml($$"""
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: default}
        spec:
          restartPolicy: {{restartPolicy}}
          containers:
          - name: app
            image: {{image}}
            command: [sleep, "3600"]
        """, uid);
}
