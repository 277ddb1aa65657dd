using System.Globalization;
using System.Text.Json;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Store;
using EdgeKube.Protocol;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Pods.Sources;

/// <summary>
/// Pods pushed by the master over MQTT: one retained message per pod on
/// <c>nodes/{node}/pods/{ns}/{name}</c> (empty = deleted) and the node's pod index on
/// <c>nodes/{node}/pods</c>. The desired set is the received pods that the index lists, so deletions
/// made while the node was away are seen as soon as the retained index arrives. Each change is
/// persisted by the store before the handler returns, i.e. before the broker gets its acknowledgement.
/// Until the first index arrives, nothing persisted is removed: a board that boots with no network
/// runs the pods it last had.
/// </summary>
public sealed partial class MqttPodSource
{
    public const string SourceName = "mqtt";

    private readonly object _lock = new();
    private readonly string _nodeName;
    private readonly Topics _topics;
    private readonly DesiredPodStore _store;
    private readonly ILogger<MqttPodSource> _logger;
    private readonly Dictionary<string, V1Pod> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RejectedPod> _rejected = new(StringComparer.Ordinal);
    private PodIndex? _index;

    public MqttPodSource(string nodeName, Topics topics, DesiredPodStore store, ILogger<MqttPodSource> logger)
    {
        _nodeName = nodeName;
        _topics = topics;
        _store = store;
        _logger = logger;
        foreach (var persisted in store.All().Where(p => p.Source == SourceName))
        {
            _pods[Key(persisted.Pod.Namespace(), persisted.Pod.Name())] = persisted.Pod;
        }
    }

    /// <summary>The largest payload accepted for one pod (a pod spec is a few KB).</summary>
    public const int MaxPayloadBytes = 256 * 1024;

    public Task HandleAsync(MqttMessage message)
    {
        if (!_topics.TryParseNodeTopic(message.Topic, out var node, out var rest) || node != _nodeName || rest.Length == 0 || rest[0] != "pods")
        {
            return Task.CompletedTask;
        }

        lock (_lock)
        {
            if (rest.Length == 1)
            {
                HandleIndex(message);
            }
            else if (rest.Length == 3)
            {
                HandlePod(rest[1], rest[2], message);
            }
            else
            {
                return Task.CompletedTask;
            }

            Apply();
        }

        return Task.CompletedTask;
    }

    private void HandleIndex(MqttMessage message)
    {
        if (message.Payload.Length == 0)
        {
            _index = new PodIndex("0", []);
            return;
        }

        try
        {
            _index = JsonSerializer.Deserialize(message.Payload.Span, ProtocolJson.Default.PodIndex) ?? throw new JsonException("empty index");
        }
        catch (JsonException e)
        {
            LogBadIndex(e.Message);
        }
    }

    private void HandlePod(string ns, string name, MqttMessage message)
    {
        var key = Key(ns, name);
        if (message.Payload.Length == 0)
        {
            _pods.Remove(key);
            _rejected.Remove(key);
            return;
        }

        V1Pod pod;
        try
        {
            if (message.Payload.Length > MaxPayloadBytes)
            {
                throw new InvalidPodException($"pod message is {message.Payload.Length} bytes, more than the {MaxPayloadBytes} accepted");
            }

            pod = PodManifest.ParseJson(message.Text);
            PodValidation.ApplyDefaults(pod);
            var errors = new List<string>(PodValidation.Validate(pod));
            if (pod.Metadata.Name != name || pod.Metadata.NamespaceProperty != ns)
            {
                errors.Add($"metadata: pod {pod.Metadata.NamespaceProperty}/{pod.Metadata.Name} published on the topic of {ns}/{name}");
            }

            if (string.IsNullOrEmpty(pod.Metadata.Uid))
            {
                errors.Add("metadata.uid: Required value");
            }

            if (pod.Spec?.NodeName is { Length: > 0 } bound && bound != _nodeName)
            {
                errors.Add($"spec.nodeName: the pod is bound to {bound}, not {_nodeName}");
            }

            if (errors.Count > 0)
            {
                throw new InvalidPodException(string.Join("; ", errors));
            }
        }
        catch (InvalidPodException e)
        {
            LogRejected(ns, name, e.Message);
            _rejected[key] = new RejectedPod(SourceName, message.Topic, ns, name, e.Message);
            return;
        }

        _rejected.Remove(key);
        if (_pods.TryGetValue(key, out var existing) && existing.Uid() == pod.Uid() && IsOlder(pod, existing))
        {
            LogStale(ns, name, pod.Metadata.ResourceVersion ?? string.Empty, existing.Metadata.ResourceVersion ?? string.Empty);
            return;
        }

        pod.Spec!.NodeName ??= _nodeName;
        _pods[key] = pod;
        LogReceived(ns, name, pod.Metadata.ResourceVersion ?? string.Empty);
    }

    private void Apply()
    {
        IEnumerable<V1Pod> desired = _pods.Values;
        if (_index is { } index)
        {
            var listed = index.Items.Select(i => (i.Namespace, i.Name, i.Uid)).ToHashSet();
            desired = desired.Where(p => listed.Contains((p.Namespace(), p.Name(), p.Uid())));
        }

        _store.SetSource(SourceName, [.. desired], [.. _rejected.Values]);
    }

    /// <summary>An update older than what we hold (resourceVersions compare as numbers, as the master issues them).</summary>
    private static bool IsOlder(V1Pod incoming, V1Pod held) =>
        long.TryParse(incoming.Metadata.ResourceVersion, NumberStyles.Integer, CultureInfo.InvariantCulture, out var a)
        && long.TryParse(held.Metadata.ResourceVersion, NumberStyles.Integer, CultureInfo.InvariantCulture, out var b)
        && a < b;

    private static string Key(string ns, string name) => ns + "/" + name;

    [LoggerMessage(EventId = 1100, Level = LogLevel.Error, Message = "Pod {Namespace}/{Name} from the master rejected: {Reason}")]
    private partial void LogRejected(string @namespace, string name, string reason);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Ignoring stale update of {Namespace}/{Name} (resourceVersion {Incoming} < {Held})")]
    private partial void LogStale(string @namespace, string name, string incoming, string held);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Debug, Message = "Pod {Namespace}/{Name} received from the master (resourceVersion {ResourceVersion})")]
    private partial void LogReceived(string @namespace, string name, string resourceVersion);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Error, Message = "Pod index from the master unreadable, keeping the previous one: {Error}")]
    private partial void LogBadIndex(string error);
}
