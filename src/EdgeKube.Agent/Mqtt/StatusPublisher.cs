using EdgeKube.Agent.Json;
using System.Text;
using EdgeKube.Agent.Status;
using EdgeKube.Agent.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Mqtt;

/// <summary>
/// Publishes each pod's status to the master when it changes (retained, QoS 1), as the body of a
/// <c>pods/status</c> update: a Pod with name, namespace, uid and status. When a pod is gone from the
/// node its status topic is cleared, which is how the master learns that a deletion has finished.
/// </summary>
/// <remarks>
/// A pod that is just starting (Pending, every container waiting in ContainerCreating or
/// PodInitializing, none run yet) is held back for <see cref="StartingHold"/>: most starts are done
/// by then, and the Running status that replaces it goes alone. That saves a status message per pod
/// start on the link and a write at the master, which otherwise lands while the runtime creates the
/// sandbox (bench trace: concurrent fsyncs made RunPodSandbox some 30 % slower). A start that takes
/// longer still shows ContainerCreating after the hold; every other status goes at once.
/// </remarks>
public sealed partial class StatusPublisher
{
    private readonly MqttLink _link;
    private readonly string _nodeName;
    private readonly DesiredPodStore _desired;
    private readonly StatusManager _statuses;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, string> _topics = new(StringComparer.Ordinal);
    private readonly ILogger<StatusPublisher> _logger;

    public StatusPublisher(MqttLink link, string nodeName, DesiredPodStore desired, StatusManager statuses, TimeProvider time, ILogger<StatusPublisher> logger)
    {
        _logger = logger;
        _link = link;
        _nodeName = nodeName;
        _desired = desired;
        _statuses = statuses;
        _time = time;
        statuses.StatusChanged += (uid, status) => _ = IsStarting(status) ? HoldAsync(uid, status) : PublishAsync(uid, status);
        statuses.StatusRemoved += uid => _ = ClearAsync(uid);

        // What was computed before this start goes out with the first connect.
        foreach (var (uid, status) in statuses.All())
        {
            _ = PublishAsync(uid, status);
        }
    }

    /// <summary>How long the status of a pod that is just starting waits for the one that replaces it.</summary>
    public TimeSpan StartingHold { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The status kubelet reports as a pod's start begins: Pending, nothing run yet, no container waiting for another reason.</summary>
    public static bool IsStarting(V1PodStatus status) =>
        status.Phase == "Pending"
        && (status.ContainerStatuses ?? []).Concat(status.InitContainerStatuses ?? []) is var containers
        && containers.All(c => c.State?.Waiting?.Reason is "ContainerCreating" or "PodInitializing" && c.LastState?.Terminated is null && c.RestartCount == 0);

    private async Task HoldAsync(string uid, V1PodStatus status)
    {
        await Task.Delay(StartingHold, _time).ConfigureAwait(false);
        // Published only when nothing has replaced it meanwhile (a newer status went out already, or the pod is gone).
        if (ReferenceEquals(_statuses.Get(uid), status))
        {
            await PublishAsync(uid, status).ConfigureAwait(false);
        }
    }

    private Task PublishAsync(string uid, V1PodStatus status)
    {
        if (_desired.Get(uid)?.Pod is not { } pod)
        {
            return Task.CompletedTask;
        }

        var topic = _link.Topics.PodStatus(_nodeName, pod.Namespace(), pod.Name());
        lock (_topics)
        {
            _topics[uid] = topic;
        }

        var body = new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = pod.Name(),
                NamespaceProperty = pod.Namespace(),
                Uid = uid,
                ResourceVersion = pod.Metadata.ResourceVersion,
                Annotations = pod.Metadata.Annotations?.TryGetValue("kubernetes.io/config.source", out var source) == true
                    ? new Dictionary<string, string> { ["kubernetes.io/config.source"] = source }
                    : null,
            },
            Status = status,
        };
        LogPublishing(pod.Namespace(), pod.Name(), status.Phase ?? string.Empty);
        return _link.PublishRetainedAsync(topic, Encoding.UTF8.GetBytes(KubeJson.Serialize(body)), CancellationToken.None);
    }

    private Task ClearAsync(string uid)
    {
        string? topic;
        lock (_topics)
        {
            _topics.Remove(uid, out topic);
        }

        // A pod deleted before it ever reported: its (empty) status topic still tells the master it is gone.
        if (topic is null && _desired.Get(uid)?.Pod is { } pod)
        {
            topic = _link.Topics.PodStatus(_nodeName, pod.Namespace(), pod.Name());
        }

        return topic is null ? Task.CompletedTask : _link.PublishRetainedAsync(topic, [], CancellationToken.None);
    }

    [LoggerMessage(EventId = 1010, Level = LogLevel.Debug, Message = "Publishing status of pod {Namespace}/{Name}: {Phase}")]
    private partial void LogPublishing(string @namespace, string name, string phase);
}
