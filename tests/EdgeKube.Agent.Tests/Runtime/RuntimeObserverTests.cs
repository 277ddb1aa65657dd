using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using EdgeKube.Agent.Runtime;
using EdgeKube.Agent.Tests.Fakes;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Runtime;

/// <summary>The relist (kubelet's PLEG) against the in-memory runtime: which pods it reports changed, and which it lists.</summary>
public sealed class RuntimeObserverTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
    private readonly FakeRuntime _runtime;
    private readonly RuntimeConfigBuilder _configs = new(new NodeLayout("node1", "/tmp/pods", "/tmp/logs", 1L << 30));
    private readonly RuntimeObserver _observer;
    private readonly List<string> _changed = [];
    private readonly List<string[]> _relisted = [];

    public RuntimeObserverTests()
    {
        _runtime = new FakeRuntime(_time);
        _observer = new RuntimeObserver(_runtime, _time, NullLogger<RuntimeObserver>.Instance);
        _observer.PodChanged += _changed.Add;
        _observer.Relisted += uids => _relisted.Add([.. uids.Order(StringComparer.Ordinal)]);
    }

    private Task<(string Sandbox, string Container)> RunAsync(V1Pod pod) => _runtime.RunPodAsync(pod, _configs);

    private async Task<string[]> RelistAsync()
    {
        _changed.Clear();
        await _observer.RelistAsync(CancellationToken.None);
        return [.. _changed.Order(StringComparer.Ordinal)];
    }

    [Fact]
    public async Task Only_pods_whose_sandboxes_or_containers_changed_are_reported()
    {
        var a = TestPods.Simple(uid: "uid-a");
        var b = TestPods.Simple(uid: "uid-b");
        var (_, containerA) = await RunAsync(a);
        var (sandboxB, containerB) = await RunAsync(b);

        Assert.Equal(["uid-a", "uid-b"], await RelistAsync());
        Assert.Empty(await RelistAsync());
        Assert.Equal(["uid-a", "uid-b"], _relisted[^1]);

        // A container exits: its pod, and only its pod.
        _runtime.Exit(containerA, 1);
        Assert.Equal(["uid-a"], await RelistAsync());
        Assert.Empty(await RelistAsync());

        // A container is removed, then the sandbox is stopped and removed: each a change of that pod.
        await _runtime.RemoveContainerAsync(containerB, CancellationToken.None);
        Assert.Equal(["uid-b"], await RelistAsync());
        await _runtime.StopPodSandboxAsync(sandboxB, CancellationToken.None);
        Assert.Equal(["uid-b"], await RelistAsync());
        await _runtime.RemovePodSandboxAsync(sandboxB, CancellationToken.None);
        Assert.Equal(["uid-b"], await RelistAsync());
        Assert.Equal(["uid-a"], _relisted[^1]);
        Assert.Empty(await RelistAsync());
        Assert.Equal(8, _observer.RelistCount);
    }

    [Fact]
    public async Task Sandboxes_and_containers_not_made_by_the_agent_are_ignored()
    {
        var config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "other", Namespace = "default", Uid = "uid-other" } };
        config.Labels["io.kubernetes.pod.uid"] = "uid-other";
        await _runtime.RunPodSandboxAsync(config, CancellationToken.None);
        await RunAsync(TestPods.Simple(uid: "uid-mine"));

        Assert.Equal(["uid-mine"], await RelistAsync());
        Assert.Equal(["uid-mine"], _relisted[^1]);
    }

    [Fact]
    public async Task A_failed_relist_is_remembered_and_reports_nothing()
    {
        await RunAsync(TestPods.Simple(uid: "uid-a"));
        await RelistAsync();
        _runtime.InjectError("ListPodStates", new RuntimeException(RuntimeErrorKind.Unavailable, "connection refused"));

        Assert.Empty(await RelistAsync());
        Assert.Equal("connection refused", _observer.LastError);
        Assert.False(_observer.IsHealthy(TimeSpan.FromSeconds(30)));

        // The runtime answers again and nothing changed meanwhile: healthy, nothing to report.
        Assert.Empty(await RelistAsync());
        Assert.Null(_observer.LastError);
        Assert.True(_observer.IsHealthy(TimeSpan.FromSeconds(30)));
    }
}
