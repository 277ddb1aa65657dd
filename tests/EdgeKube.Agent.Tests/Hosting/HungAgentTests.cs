using EdgeKube.Agent.Hosting;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Tests.Fakes;
using EdgeKube.Agent.Tests.Integration;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Agent.Tests.Hosting;

/// <summary>
/// The master counts a node's open MQTT session as proof of life, so an agent whose main loop hangs
/// must give its session up: the real agent on the in-memory runtime, against a real broker, with
/// the runtime's list call made to hang past every deadline.
/// </summary>
public sealed class HungAgentTests : IAsyncLifetime
{
    private const string Node = "hung-node";
    private const string Presence = "edgekube/v1/nodes/hung-node/presence";
    private readonly TestBroker _broker = new(new Dictionary<string, string> { [Node] = "node-secret" });
    private readonly string _root = Directory.CreateTempSubdirectory("edgekube-hung-").FullName;
    private readonly FakeRuntime _runtime = new(TimeProvider.System);
    private Agent.Hosting.Agent? _agent;

    public async Task InitializeAsync() => await _broker.StartAsync();

    public async Task DisposeAsync()
    {
        _runtime.Hang?.TrySetResult();
        if (_agent is not null)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _agent.StopAsync(stop.Token);
            _agent.Dispose();
        }

        await _broker.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task A_hung_main_loop_takes_the_session_down_and_the_node_comes_back_when_it_turns_again()
    {
        var options = new AgentOptions
        {
            NodeName = Node,
            StateDir = Path.Combine(_root, "state"),
            PodLogsDir = Path.Combine(_root, "logs"),
            ContainerdSocket = "/nonexistent/fake.sock",
            ReadOnlyPort = 0,
            CniConfDir = string.Empty,
            NodeIp = "127.0.0.1",
            // Tolerance 2 × 1 s + 10 s: the loop counts as hung after 12 s without a turn.
            RuntimeRequestTimeout = TimeSpan.FromSeconds(1),
            Broker = new BrokerOptions { Url = new Uri($"mqtt://127.0.0.1:{_broker.Port}"), Username = Node, Password = "node-secret" },
        };
        Assert.Equal(TimeSpan.FromSeconds(12), Agent.Hosting.Agent.HangTolerance(options));
        _agent = new Agent.Hosting.Agent(options, _runtime, NullLoggerFactory.Instance, TimeProvider.System);
        await _agent.StartAsync(CancellationToken.None);
        await _broker.WaitForAsync(Presence, p => p == "online");
        Assert.True(_agent.IsAlive(TimeSpan.FromSeconds(12)));

        // The relist loop hangs: no turn, no deadline. The agent says offline and stays away.
        var online = _broker.Seen.Count(m => m.Topic == Presence && m.Payload == "online");
        _runtime.Hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _broker.WaitForAsync(Presence, p => p == "offline", TimeSpan.FromSeconds(40));
        Assert.False(_agent.IsAlive(TimeSpan.FromSeconds(12)));
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal("offline", _broker.Latest(Presence));
        Assert.Equal(online, _broker.Seen.Count(m => m.Topic == Presence && m.Payload == "online"));

        // The loop turns again: the link comes back and the node says online.
        _runtime.Hang.SetResult();
        await Eventually.Until(() => Task.FromResult(_broker.Seen.Count(m => m.Topic == Presence && m.Payload == "online") > online),
            TimeSpan.FromSeconds(40), () => "the node did not come back online after the loop turned again");
        Assert.Equal("online", _broker.Latest(Presence));
    }
}
