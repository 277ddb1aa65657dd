using System.Text.Json.Nodes;
using EdgeKube.Master.Api;

namespace EdgeKube.Master.Tests.Api;

public sealed class WorkloadRulesTests
{
    private static JsonObject Parse(string json) => JsonNode.Parse(json)!.AsObject();

    private static JsonObject Deployment(string spec = "") => Parse("""
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {SPEC "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}
        """.Replace("SPEC", spec, StringComparison.Ordinal));

    [Fact]
    public void Deployment_gets_kubernetes_defaults()
    {
        var d = Deployment();
        WorkloadRules.ApplyDefaults(d);
        var spec = d["spec"]!;
        Assert.Equal(1, spec["replicas"]!.GetValue<int>());
        Assert.Equal(10, spec["revisionHistoryLimit"]!.GetValue<int>());
        Assert.Equal(600, spec["progressDeadlineSeconds"]!.GetValue<int>());
        Assert.Equal("RollingUpdate", spec["strategy"]!["type"]!.GetValue<string>());
        Assert.Equal("25%", spec["strategy"]!["rollingUpdate"]!["maxSurge"]!.GetValue<string>());
        Assert.Equal("25%", spec["strategy"]!["rollingUpdate"]!["maxUnavailable"]!.GetValue<string>());
        Assert.Equal("Always", spec["template"]!["spec"]!["restartPolicy"]!.GetValue<string>());
        Assert.Equal("Always", spec["template"]!["spec"]!["containers"]![0]!["imagePullPolicy"]!.GetValue<string>());
        Assert.Empty(WorkloadRules.Validate(d));
    }

    [Fact]
    public void Job_gets_a_selector_of_its_uid_and_its_pods_labels()
    {
        var job = Parse("""
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "uid": "u-1"},
             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}}}}
            """);
        WorkloadRules.ApplyDefaults(job);
        Assert.Equal("u-1", job["spec"]!["selector"]!["matchLabels"]!["batch.kubernetes.io/controller-uid"]!.GetValue<string>());
        Assert.Equal("once", job["spec"]!["template"]!["metadata"]!["labels"]!["job-name"]!.GetValue<string>());
        Assert.Equal(1, job["spec"]!["completions"]!.GetValue<int>());
        Assert.Equal(6, job["spec"]!["backoffLimit"]!.GetValue<int>());
        Assert.Empty(WorkloadRules.Validate(job));
    }

    [Theory]
    [InlineData("\"completionMode\": \"Indexed\", \"parallelism\": 2,", "spec.completions: Required value: when completion mode is Indexed")]
    [InlineData("\"completionMode\": \"Indexed\", \"completions\": 100001,", "spec.completions: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed")]
    [InlineData("\"completionMode\": \"Sometimes\",", "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"")]
    [InlineData("\"ttlSecondsAfterFinished\": -5,", "spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0")]
    public void Job_errors_use_kubernetes_words(string spec, string error)
    {
        var job = Parse("""
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "uid": "u-1"},
             "spec": {SPEC "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}}}}
            """.Replace("SPEC", spec, StringComparison.Ordinal));
        WorkloadRules.ApplyDefaults(job);
        Assert.Contains(error, WorkloadRules.Validate(job));
    }

    [Fact]
    public void An_indexed_job_with_completions_is_valid_and_its_mode_cannot_change()
    {
        var job = Parse("""
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "uid": "u-1"},
             "spec": {"completionMode": "Indexed", "completions": 3, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}}}}
            """);
        WorkloadRules.ApplyDefaults(job);
        Assert.Empty(WorkloadRules.Validate(job));
        var changed = job.DeepClone().AsObject();
        changed["spec"]!["completionMode"] = "NonIndexed";
        Assert.Contains("spec.completionMode: Invalid value: \"NonIndexed\": field is immutable", WorkloadRules.ValidateUpdate(job, changed));
    }

    [Theory]
    [InlineData("\"replicas\": -1,", "spec.replicas: Invalid value: -1: must be greater than or equal to 0")]
    [InlineData("\"strategy\": {\"type\": \"Rolling\"},", "spec.strategy.type: Unsupported value: \"Rolling\": supported values: \"Recreate\", \"RollingUpdate\"")]
    [InlineData("\"strategy\": {\"type\": \"RollingUpdate\", \"rollingUpdate\": {\"maxSurge\": 0, \"maxUnavailable\": 0}},", "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0")]
    [InlineData("\"strategy\": {\"type\": \"RollingUpdate\", \"rollingUpdate\": {\"maxSurge\": \"150%\"}},", "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"150%\": must not be greater than 100%")]
    public void Deployment_errors_use_kubernetes_words(string spec, string error)
    {
        var d = Deployment(spec);
        WorkloadRules.ApplyDefaults(d);
        Assert.Contains(error, WorkloadRules.Validate(d));
    }

    [Fact]
    public void Selector_must_match_the_template_and_may_not_change()
    {
        var d = Deployment();
        d["spec"]!["template"]!["metadata"]!["labels"] = new JsonObject { ["app"] = "other", ["tier"] = "edge" };
        WorkloadRules.ApplyDefaults(d);
        Assert.Contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\", \"tier\":\"edge\"}: `selector` does not match template `labels`", WorkloadRules.Validate(d));

        var old = Deployment();
        var changed = Deployment();
        changed["spec"]!["selector"] = Parse("""{"matchLabels": {"app": "web", "v": "2"}}""");
        Assert.Contains(WorkloadRules.ValidateUpdate(old, changed), e => e.StartsWith("spec.selector: Invalid value:", StringComparison.Ordinal) && e.EndsWith("field is immutable", StringComparison.Ordinal));

        d = Deployment();
        d["spec"]!.AsObject().Remove("selector");
        WorkloadRules.ApplyDefaults(d);
        Assert.Contains("spec.selector: Required value", WorkloadRules.Validate(d));
    }

    [Fact]
    public void Restart_policy_must_suit_the_kind_and_containers_are_validated_as_a_pods()
    {
        var d = Deployment();
        d["spec"]!["template"]!["spec"]!["restartPolicy"] = "Never";
        d["spec"]!["template"]!["spec"]!["containers"]![0]!.AsObject().Remove("image");
        var errors = WorkloadRules.Validate(d);
        Assert.Contains("spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"", errors);
        Assert.Contains("spec.template.spec.containers[0].image: Required value", errors);

        var job = Parse("""
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "uid": "u-1"},
             "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}
            """);
        WorkloadRules.ApplyDefaults(job);
        Assert.Contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"", WorkloadRules.Validate(job));
    }

    [Theory]
    [InlineData("25%", 10, true, 3)]
    [InlineData("25%", 10, false, 2)]
    [InlineData("100%", 3, false, 3)]
    [InlineData("0%", 3, true, 0)]
    public void Int_or_percent_scales_as_kubernetes(string value, long total, bool roundUp, long expected) =>
        Assert.Equal(expected, WorkloadRules.Scaled(JsonValue.Create(value), total, roundUp));
}
