using System.Diagnostics;
using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The master on an external mosquitto, configured by <c>edgekube-master broker-config</c> as a
/// person would: the same cluster, and a broker restart that the master and the board ride out.
/// </summary>
[Collection("containerd")]
public sealed class MosquittoClusterTests(ContainerdFixture containerd) : ClusterTestBase(containerd)
{
    private readonly int _port = AgentProcess.FreePort();
    private Process? _mosquitto;

    private string ConfigDir => Path.Combine(Master.DataDir, "mosquitto");

    protected override string[] MasterArgs => ["--broker", $"mqtt://127.0.0.1:{_port}"];

    protected override async Task BeforeMasterAsync(MasterProcess master)
    {
        await WriteBrokerConfigAsync(master);
        StartMosquitto();
        await WaitForPortAsync();
    }

    protected override async Task<string[]> PrepareAgentAsync(string workDir)
    {
        // A new node's password reaches mosquitto as broker-config writes it again and mosquitto reloads (SIGHUP).
        await WriteBrokerConfigAsync(Master);
        using var hup = Process.Start("kill", ["-HUP", _mosquitto!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await hup!.WaitForExitAsync();
        return [];
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await StopMosquittoAsync();
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
        await StopMosquittoAsync();
        StartMosquitto();
        await WaitForPortAsync();
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

    private void StartMosquitto()
    {
        var psi = new ProcessStartInfo("mosquitto", ["-c", Path.Combine(ConfigDir, "edgekube.conf")]) { RedirectStandardError = true, RedirectStandardOutput = true };
        _mosquitto = Process.Start(psi) ?? throw new InvalidOperationException("mosquitto did not start");
        _mosquitto.BeginErrorReadLine();
        _mosquitto.BeginOutputReadLine();
    }

    private async Task WaitForPortAsync() =>
        await Eventually.Until(async () =>
        {
            using var client = new System.Net.Sockets.TcpClient();
            try
            {
                await client.ConnectAsync(System.Net.IPAddress.Loopback, _port);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), () => "mosquitto not listening");

    private async Task StopMosquittoAsync()
    {
        if (_mosquitto is { HasExited: false } m)
        {
            m.Kill();
            await m.WaitForExitAsync();
        }

        _mosquitto?.Dispose();
        _mosquitto = null;
    }
}
