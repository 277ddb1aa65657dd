using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The master on an external mosquitto, configured by <c>edgekube-master broker-config</c> as a
/// person would: the same cluster, and a broker restart that the master and the board ride out.
/// </summary>
[Collection("containerd")]
public sealed class MosquittoClusterTests : ClusterTestBase
{
    private readonly int _port;
    private readonly MosquittoProcess _mosquitto;

    public MosquittoClusterTests(ContainerdFixture containerd) : base(containerd)
    {
        _port = AgentProcess.FreePort();
        _mosquitto = new MosquittoProcess(_port);
    }

    private string ConfigDir => Path.Combine(Master.DataDir, "mosquitto");

    private string Config => Path.Combine(ConfigDir, "edgekube.conf");

    protected override string[] MasterArgs => ["--broker", $"mqtt://127.0.0.1:{_port}"];

    protected override async Task BeforeMasterAsync(MasterProcess master)
    {
        await WriteBrokerConfigAsync(master);
        await _mosquitto.StartAsync(Config);
    }

    protected override async Task<string[]> PrepareAgentAsync(string workDir)
    {
        // A new node's password reaches mosquitto as broker-config writes it again and mosquitto reloads (SIGHUP).
        await WriteBrokerConfigAsync(Master);
        await _mosquitto.ReloadAsync();
        return [];
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _mosquitto.StopAsync();
    }

    [Fact]
    public async Task The_cluster_runs_on_mosquitto_and_rides_out_a_broker_restart()
    {
        Assert.Contains($"url: mqtt://127.0.0.1:{_port}", JoinConfig);
        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("before"));
        await WaitForPhaseAsync("before", "Running");
        await Eventually.Until(async () => (await Master.KubectlAsync("logs", "before")).Output.Contains("hello from before", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
            () => "no logs through mosquitto" + Diagnostics);
        var beforeId = await ContainerIdAsync("before");

        // mosquitto restarts (no persistence: its retained messages are gone). Master and node reconnect and resync.
        await _mosquitto.StopAsync();
        await _mosquitto.StartAsync(Config);
        await Eventually.Until(() => Task.FromResult(Master.Log.Split('\n').Count(l => l.Contains("Bridge connected to broker", StringComparison.Ordinal)) >= 2), TimeSpan.FromSeconds(60),
            () => "master did not reconnect" + Diagnostics);
        await WaitForNodeReadyAsync();
        await ApplyAsync(PodYaml("after"));
        await WaitForPhaseAsync("after", "Running");
        Assert.Equal(beforeId, await ContainerIdAsync("before"));
        await Master.Kubectl("delete", "pod", "before");
        Assert.Contains("NotFound", (await Master.KubectlAsync("get", "pod", "before")).Output);
        await WaitForPhaseAsync("after", "Running");
    }

    private async Task WriteBrokerConfigAsync(MasterProcess master)
    {
        var (code, output) = await master.CliAsync("broker-config", "--mosquitto", Path.Combine(master.DataDir, "mosquitto"), "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--user", "root");
        Assert.True(code == 0, output);
        Assert.Contains("edgekube.acl", output);
    }
}
