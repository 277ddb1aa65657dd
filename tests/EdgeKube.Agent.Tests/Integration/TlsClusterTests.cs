using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>The board joins over MQTT with TLS (mqtts) and trusts exactly the CA its join config carries.</summary>
[Collection("containerd")]
public sealed class TlsClusterTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    private readonly int _tlsPort = AgentProcess.FreePort();

    protected override string[] MasterArgs => ["--mqtt-tls-listen", $"127.0.0.1:{_tlsPort}"];

    [Fact]
    public async Task The_node_joins_over_mqtts_with_the_masters_ca_and_refuses_a_broker_it_cannot_verify()
    {
        Assert.Contains($"url: mqtts://127.0.0.1:{_tlsPort}", JoinConfig);
        var caData = System.Text.RegularExpressions.Regex.Match(JoinConfig, @"caData: (\S+)").Groups[1].Value;
        var ca = X509Certificate2.CreateFromPem(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(caData)));
        Assert.Equal(File.ReadAllText(Path.Combine(Master.DataDir, "pki", "ca.crt")).Trim(), ca.ExportCertificatePem().Trim());
        Assert.Contains("Embedded MQTT broker listening for TLS (mqtts) on 127.0.0.1:" + _tlsPort, Master.Log);

        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("secure"));
        await WaitForPhaseAsync("secure", "Running");
        await Eventually.Until(async () => (await Master.KubectlAsync("logs", "secure")).Output.Contains("hello from secure", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
            () => "no logs over mqtts" + Diagnostics);
        Assert.Contains($"Connected to broker mqtts://127.0.0.1:{_tlsPort}", Agent.Log);

        // The same node given another CA will not talk to the broker: the certificate does not verify.
        await Agent.StopAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var stranger = new CertificateRequest("CN=not-the-edgekube-ca", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var config = Path.Combine(Agent.WorkDir, "agent.yaml");
        File.WriteAllText(config, JoinConfig.Replace(caData, Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(stranger.ExportCertificatePem())), StringComparison.Ordinal));
        Agent = NewAgent(Agent.WorkDir, ["--config", config]);
        await Agent.StartAsync();
        await Eventually.Until(() => Task.FromResult(Agent.Log.Contains($"Cannot reach broker mqtts://127.0.0.1:{_tlsPort}", StringComparison.Ordinal)), TimeSpan.FromSeconds(30),
            () => "no connection failure logged:\n" + Agent.Log);
        Assert.DoesNotContain("Connected to broker", Agent.Log);
        // Its pods run on meanwhile.
        Assert.True(IsRunning(await Agent.WaitForPodAsync("secure", IsRunning, what: "Running without the broker")));
    }

    [Fact]
    public async Task A_config_with_a_broken_ca_is_refused_with_the_setting_named()
    {
        await Agent.StopAsync();
        var config = Path.Combine(Agent.WorkDir, "agent.yaml");
        File.WriteAllText(config, System.Text.RegularExpressions.Regex.Replace(JoinConfig, @"caData: \S+", "caData: bm90IGEgY2VydGlmaWNhdGU="));
        var broken = NewAgent(Agent.WorkDir, ["--config", config]);
        await broken.StartAsync(waitHealthy: false);
        await Eventually.Until(() => Task.FromResult(broken.HasExited), TimeSpan.FromSeconds(30), () => "agent kept running on a broken config:\n" + broken.Log);
        Assert.NotEqual(0, broken.ExitCode);
        Assert.Contains("broker.caData is not a PEM certificate", broken.Log);
        Agent = broken;
    }
}
