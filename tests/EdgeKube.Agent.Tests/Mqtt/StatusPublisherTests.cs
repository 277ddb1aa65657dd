using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Store;
using EdgeKube.Agent.Tests.Integration;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Mqtt;

/// <summary>
/// What the agent sends the master about its pods, through a real broker: the status of a pod that is
/// only starting waits (fake time) for the one that replaces it; every other status goes at once.
/// </summary>
public sealed class StatusPublisherTests : IAsyncLifetime
{
    private const string Node = "pub-node";
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-01-01T00:00:00Z");
    private readonly TestBroker _broker = new(new Dictionary<string, string> { [Node] = "node-secret" });
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-publisher-").FullName;
    private readonly FakeTimeProvider _time = new(T0);
    private readonly CancellationTokenSource _stop = new();
    private MqttLink _link = null!;
    private Task _run = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        await _broker.StartAsync();
        _link = new MqttLink(new BrokerOptions { Url = new Uri($"mqtt://127.0.0.1:{_broker.Port}"), Username = Node, Password = "node-secret" },
            Node, TimeProvider.System, NullLogger<MqttLink>.Instance);
        _run = _link.RunAsync(_stop.Token);
        await _broker.WaitForAsync($"edgekube/v1/nodes/{Node}/presence", p => p == "online");
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run;
        }
        catch (OperationCanceledException)
        {
        }

        await _link.DisposeAsync();
        await _broker.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static ObservedPod Observed(ContainerState? state) =>
        new("u", "default", "web", [new ObservedSandbox("s1", 0, true, T0, "10.244.0.5", [], false)],
            state is { } s ? [new ObservedContainer("c1", "s1", "app", 0, s, T0, T0, null, 0, string.Empty, string.Empty, "busybox:1.0", "sha256:abc", "h")] : []);

    private static V1PodStatus Status(V1Pod pod, ObservedPod observed, string? waiting = null) =>
        PodStatusComputer.Compute(pod, observed, new PodSyncNotes
        {
            StartTime = T0,
            Waiting = waiting is null ? new Dictionary<string, ContainerWaiting>() : new Dictionary<string, ContainerWaiting> { ["app"] = new(waiting, "failed") },
        }, null, "192.168.1.10", T0);

    [Fact]
    public void A_starting_pod_is_pending_with_nothing_run_and_no_other_reason()
    {
        var pod = TestPods.Simple();
        Assert.True(StatusPublisher.IsStarting(Status(pod, Observed(null))));
        Assert.False(StatusPublisher.IsStarting(Status(pod, Observed(ContainerState.ContainerRunning))));
        Assert.False(StatusPublisher.IsStarting(Status(pod, Observed(null), "ErrImagePull")));
        Assert.False(StatusPublisher.IsStarting(Status(pod, Observed(null), "CreateContainerError")));
    }

    [Fact]
    public async Task The_starting_status_waits_for_its_successor_and_goes_alone_when_the_start_takes_longer()
    {
        var desired = new DesiredPodStore(Path.Combine(_dir, "state"), NullLogger<DesiredPodStore>.Instance);
        var statuses = new StatusManager(Path.Combine(_dir, "state"), NullLogger<StatusManager>.Instance);
        _ = new StatusPublisher(_link, Node, desired, statuses, _time, NullLogger<StatusPublisher>.Instance);
        var fast = TestPods.Simple(uid: "uid-fast");
        fast.Metadata.Name = "fast";
        var slow = TestPods.Simple(uid: "uid-slow");
        slow.Metadata.Name = "slow";
        desired.SetSource("test", [fast, slow], []);
        var fastTopic = $"edgekube/v1/nodes/{Node}/pods/default/fast/status";
        var slowTopic = $"edgekube/v1/nodes/{Node}/pods/default/slow/status";

        // A start done within the hold: only Running is published.
        statuses.Set("uid-fast", Status(fast, Observed(null)));
        _time.Advance(TimeSpan.FromMilliseconds(900));
        statuses.Set("uid-fast", Status(fast, Observed(ContainerState.ContainerRunning)));
        await _broker.WaitForAsync(fastTopic, p => p.Contains("\"phase\":\"Running\"", StringComparison.Ordinal));
        _time.Advance(TimeSpan.FromSeconds(5));

        // A start that takes longer: ContainerCreating shows once the hold is over.
        statuses.Set("uid-slow", Status(slow, Observed(null)));
        _time.Advance(TimeSpan.FromMilliseconds(999));
        await Task.Delay(300);
        Assert.Null(_broker.Latest(slowTopic));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await _broker.WaitForAsync(slowTopic, p => p.Contains("ContainerCreating", StringComparison.Ordinal));

        // An error is never held.
        statuses.Set("uid-slow", Status(slow, Observed(null), "ErrImagePull"));
        await _broker.WaitForAsync(slowTopic, p => p.Contains("ErrImagePull", StringComparison.Ordinal));

        Assert.DoesNotContain(_broker.Seen, m => m.Topic == fastTopic && m.Payload.Contains("\"phase\":\"Pending\"", StringComparison.Ordinal));
        Assert.Single(_broker.Seen, m => m.Topic == fastTopic);
    }
}
