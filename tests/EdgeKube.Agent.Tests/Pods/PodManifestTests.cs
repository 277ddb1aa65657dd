using EdgeKube.Agent.Pods;

namespace EdgeKube.Agent.Tests.Pods;

public class PodManifestTests
{
    [Fact]
    public void Yaml_and_json_give_the_same_pod()
    {
        var yaml = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              labels: {app: web}
            spec:
              containers:
              - name: c
                image: busybox:1.36
                args: ["-c", "echo $(GREETING)"]
                env: [{name: GREETING, value: "007"}, {name: ON, value: "true"}]
                ports: [{containerPort: 80, hostPort: 8080}]
                resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 1}}
            """;
        var json = """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36","args":["-c","echo $(GREETING)"],"env":[{"name":"GREETING","value":"007"},{"name":"ON","value":"true"}],"ports":[{"containerPort":80,"hostPort":8080}],"resources":{"limits":{"cpu":"500m","memory":"64Mi"},"requests":{"cpu":"1"}}}]}}""";
        var fromYaml = PodManifest.Parse(yaml).Single();
        var fromJson = PodManifest.Parse(json).Single();
        Assert.Equal(k8s.KubernetesJson.Serialize(fromJson), k8s.KubernetesJson.Serialize(fromYaml));
        Assert.Equal("007", fromYaml.Spec.Containers[0].Env[0].Value);
        Assert.Equal(8080, fromYaml.Spec.Containers[0].Ports[0].HostPort);
        Assert.Equal(0.5m, fromYaml.Spec.Containers[0].Resources.Limits["cpu"].ToDecimal());
    }

    [Fact]
    public void Several_documents_are_several_pods()
    {
        var pods = PodManifest.Parse("""
            apiVersion: v1
            kind: Pod
            metadata: {name: a}
            spec: {containers: [{name: c, image: x:1}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: b}
            spec: {containers: [{name: c, image: x:1}]}
            """);
        Assert.Equal(["a", "b"], pods.Select(p => p.Metadata.Name));
    }

    [Theory]
    [InlineData("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n", "not valid YAML")]
    [InlineData("{\"apiVersion\": \"v1\", ", "not valid JSON")]
    [InlineData("apiVersion: v1\nkind: Deployment\nmetadata: {name: a}\n", "kind must be \"Pod\"")]
    [InlineData("apiVersion: v2\nkind: Pod\nmetadata: {name: a}\n", "apiVersion must be \"v1\"")]
    [InlineData("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: 5}\n", "spec.containers")]
    [InlineData("- just\n- a list\n", "not an object")]
    public void Malformed_manifests_are_rejected_with_a_reason(string text, string expected)
    {
        var e = Assert.Throws<InvalidPodException>(() => PodManifest.Parse(text));
        Assert.Contains(expected, e.Message);
    }
}
