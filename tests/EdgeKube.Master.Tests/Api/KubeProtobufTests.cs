using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Api.Protobuf;

namespace EdgeKube.Master.Tests.Api;

/// <summary>Request bodies exactly as kubectl 1.32 sent them (captured from its typed clients), decoded to the JSON the API server keeps.</summary>
public sealed class KubeProtobufTests
{
    // kubectl create namespace sensors
    private const string Namespace = "azhzAAoPCgJ2MRIJTmFtZXNwYWNlEh8KFwoHc2Vuc29ycxIAGgAiACoAMgA4AEIAEgAaAgoAGgAiAA==";

    // kubectl create deployment web --image=busybox:1 --replicas=2 --port=80 -- sh -c "sleep 1"
    private const string Deployment = "azhzAAoVCgdhcHBzL3YxEgpEZXBsb3ltZW50EtABCh8KA3dlYhIAGgAiACoAMgA4AEIAWgoKA2FwcBIDd2ViEp4BCAISDAoKCgNhcHASA3dlYhqDAQocCgASABoAIgAqADIAOABCAFoKCgNhcHASA3dlYhJjEkUKB2J1c3lib3gSCWJ1c3lib3g6MRoCc2gaAi1jGgdzbGVlcCAxKgAyCgoAEAAYUCIAKgBCAGoAcgCAAQCIAQCQAQCiAQAaADIAQgBKAFIAWABgAGgAggEAigEAmgEAwgEAIgIKACgAOAAaDAgAEAAYACAAKAA4ABoAIgA=";

    // kubectl create job once -n sensors --image=busybox:1 -- sh -c "echo hi"
    private const string Job = "azhzAAoPCghiYXRjaC92MRIDSm9iEpgBChsKBG9uY2USABoHc2Vuc29ycyIAKgAyADgAQgASbzJtChAKABIAGgAiACoAMgA4AEIAElkSNgoEb25jZRIJYnVzeWJveDoxGgJzaBoCLWMaB2VjaG8gaGkqAEIAagByAIABAIgBAJABAKIBABoFTmV2ZXIyAEIASgBSAFgAYABoAIIBAIoBAJoBAMIBABoIIAAoADAAOgAaACIA";

    private static JsonObject Decode(string base64) => KubeProtobuf.Decode(Convert.FromBase64String(base64));

    [Fact]
    public void Namespace_from_kubectl_create_namespace()
    {
        var ns = Decode(Namespace);
        Assert.Equal("v1", ns.Str("apiVersion"));
        Assert.Equal("Namespace", ns.Str("kind"));
        Assert.Equal("""{"name":"sensors","creationTimestamp":null}""", ns["metadata"]!.ToJsonString());
        Assert.Null(ns["status"]);
    }

    [Fact]
    public void Deployment_from_kubectl_create_deployment_is_valid_after_defaults()
    {
        var d = Decode(Deployment);
        Assert.Equal("apps/v1", d.Str("apiVersion"));
        Assert.Equal("web", d.Name());
        Assert.Equal("web", d["metadata"]!["labels"]!["app"]!.GetValue<string>());
        Assert.Equal(2, d["spec"]!["replicas"]!.GetValue<long>());
        Assert.Equal("web", d["spec"]!["selector"]!["matchLabels"]!["app"]!.GetValue<string>());
        var container = d["spec"]!["template"]!["spec"]!["containers"]![0]!;
        Assert.Equal("busybox", container["name"]!.GetValue<string>());
        Assert.Equal("busybox:1", container["image"]!.GetValue<string>());
        Assert.Equal("""["sh","-c","sleep 1"]""", container["command"]!.ToJsonString());
        Assert.Equal("""[{"containerPort":80}]""", container["ports"]!.ToJsonString());
        Assert.Null(container["imagePullPolicy"]);
        Assert.Null(d["spec"]!["template"]!["spec"]!["restartPolicy"]);

        d.Metadata()["uid"] = "u-1";
        WorkloadRules.ApplyDefaults(d);
        Assert.Empty(WorkloadRules.Validate(d));
        Assert.Equal("RollingUpdate", d["spec"]!["strategy"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public void Job_from_kubectl_create_job_is_valid_after_defaults()
    {
        var job = Decode(Job);
        Assert.Equal("batch/v1", job.Str("apiVersion"));
        Assert.Equal("sensors", job.Namespace());
        Assert.Equal("Never", job["spec"]!["template"]!["spec"]!["restartPolicy"]!.GetValue<string>());
        job.Metadata()["uid"] = "u-2";
        WorkloadRules.ApplyDefaults(job);
        Assert.Empty(WorkloadRules.Validate(job));
    }

    [Fact]
    public void Fields_it_does_not_know_are_refused_with_415_rather_than_dropped()
    {
        // runtime.Unknown{typeMeta: {v1, Namespace}, raw: a Namespace with field 9 (not in core/v1) set}.
        byte[] typeMeta = [0x0a, 2, .. "v1"u8, 0x12, 9, .. "Namespace"u8];
        byte[] raw = [0x48, 1];
        byte[] body = [.. "k8s\0"u8, 0x0a, (byte)typeMeta.Length, .. typeMeta, 0x12, (byte)raw.Length, .. raw];
        var e = Assert.Throws<ApiError>(() => KubeProtobuf.Decode(body));
        Assert.Equal(415, e.Code);
        Assert.Contains("field 9 of Namespace is not known", e.Message);
        Assert.Contains("application/json", e.Message);

        e = Assert.Throws<ApiError>(() => KubeProtobuf.Decode("k8z\0"u8));
        Assert.Equal(415, e.Code);

        byte[] otherKind = [.. "k8s\0"u8, 0x0a, 13, 0x0a, 2, .. "v1"u8, 0x12, 7, .. "Service"u8];
        e = Assert.Throws<ApiError>(() => KubeProtobuf.Decode(otherKind));
        Assert.Contains("v1, Kind=Service", e.Message);
    }
}
