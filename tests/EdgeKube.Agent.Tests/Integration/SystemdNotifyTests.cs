using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The real agent and master processes with NOTIFY_SOCKET pointing at a socket of the test, as systemd
/// runs them under Type=notify with WatchdogSec= (systemd/edgekube-agent.service, edgekube-master.service).
/// </summary>
[Collection("containerd")]
public sealed class SystemdNotifyTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    // The tests start their own processes with the environment they need.
    public override Task InitializeAsync() => RemoveAllManagedAsync();

    private static Dictionary<string, string> NotifyEnvironment(NotifySocket socket) => new()
    {
        ["NOTIFY_SOCKET"] = socket.Path,
        // 1 s watchdog: a ping every 0.5 s (half of it, as sd_watchdog_enabled(3) advises).
        ["WATCHDOG_USEC"] = "1000000",
    };

    [Fact]
    public async Task Agent_says_ready_after_reaching_containerd_pings_the_watchdog_and_says_stopping_on_sigterm()
    {
        using var socket = new NotifySocket();
        var agent = new AgentProcess(Containerd.SocketPath) { Environment = NotifyEnvironment(socket) };
        await using var _ = agent;
        await agent.StartAsync();

        await Eventually.Until(() => Task.FromResult(socket.Count("READY=1") == 1 && socket.Count("WATCHDOG=1") >= 2), TimeSpan.FromSeconds(30),
            () => "notifications: " + string.Join(" | ", socket.Messages) + "\n" + AgentProcess.Tail(agent.Log, 20));
        Assert.Contains(socket.Messages, m => m.StartsWith("STATUS=waiting for the container runtime", StringComparison.Ordinal));
        Assert.Contains("STATUS=running node test-node", socket.Messages);
        Assert.DoesNotContain("STOPPING=1", socket.Messages);

        await agent.StopAsync();
        Assert.Equal(0, agent.ExitCode);
        var messages = socket.Messages;
        Assert.Equal(1, messages.Count(m => m == "STOPPING=1"));
        Assert.True(messages.IndexOf("READY=1") < messages.IndexOf("STOPPING=1"), string.Join(" | ", messages));
        Assert.Contains("systemd watchdog: ping every 0.5 s", agent.Log);
    }

    [Fact]
    public async Task Agent_waiting_for_containerd_reports_status_but_not_ready()
    {
        using var socket = new NotifySocket();
        var missing = Path.Combine(Path.GetTempPath(), "edgekube-no-containerd-" + Guid.NewGuid().ToString("N") + ".sock");
        var agent = new AgentProcess(missing) { Environment = NotifyEnvironment(socket) };
        await using var _ = agent;
        await agent.StartAsync(waitHealthy: false);

        // Still alive (the handshake loop turns), so the watchdog is fed, but not ready.
        await Eventually.Until(() => Task.FromResult(socket.Count("WATCHDOG=1") >= 2), TimeSpan.FromSeconds(30),
            () => "notifications: " + string.Join(" | ", socket.Messages) + "\n" + AgentProcess.Tail(agent.Log, 20));
        Assert.Contains("STATUS=waiting for the container runtime at " + missing, socket.Messages);
        Assert.DoesNotContain("READY=1", socket.Messages);
        Assert.Contains("does not exist: is containerd running?", agent.Log);

        await agent.StopAsync();
        Assert.Contains("STOPPING=1", socket.Messages);
    }

    [Fact]
    public async Task Agent_pings_nothing_when_the_watchdog_is_meant_for_another_process()
    {
        using var socket = new NotifySocket();
        var environment = NotifyEnvironment(socket);
        environment["WATCHDOG_PID"] = "1";
        var agent = new AgentProcess(Containerd.SocketPath) { Environment = environment };
        await using var _ = agent;
        await agent.StartAsync();
        await Eventually.Until(() => Task.FromResult(socket.Count("READY=1") == 1), TimeSpan.FromSeconds(30), () => string.Join(" | ", socket.Messages));
        // A few watchdog periods go by after READY=1, with no ping.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(0, socket.Count("WATCHDOG=1"));
    }

    [Fact]
    public async Task Master_says_ready_once_it_serves_pings_the_watchdog_and_says_stopping_on_sigterm()
    {
        using var socket = new NotifySocket();
        await using var master = new MasterProcess();
        foreach (var (name, value) in NotifyEnvironment(socket))
        {
            master.Environment[name] = value;
        }

        await master.StartAsync();
        await Eventually.Until(() => Task.FromResult(socket.Count("READY=1") == 1 && socket.Count("WATCHDOG=1") >= 2), TimeSpan.FromSeconds(30),
            () => "notifications: " + string.Join(" | ", socket.Messages) + "\n" + AgentProcess.Tail(master.Log, 20));
        Assert.Contains("STATUS=serving", socket.Messages);
        await master.Kubectl("get", "namespaces");

        await master.StopAsync();
        Assert.Contains("STOPPING=1", socket.Messages);
        Assert.True(socket.Messages.IndexOf("READY=1") < socket.Messages.IndexOf("STOPPING=1"));
    }
}
