using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace EdgeKube.Master.Bridge;

/// <summary>Where the master's MQTT client connects, as whom.</summary>
public sealed record BridgeOptions(Uri Broker, string Username, string Password, string TopicPrefix)
{
    /// <summary>For mqtts: PEM of the CA that signed the broker's certificate; the system store when null.</summary>
    public string? CaPem { get; init; }

    /// <summary><c>--cluster-cidr</c>, sent with the route table so agents know what is inside the pod network.</summary>
    public string ClusterCidr { get; init; } = "10.244.0.0/16";
}

/// <summary>
/// What the bridge has heard from a node (presence, lease, status): the node lifecycle controller reads
/// it. Times are when a message arrived live; retained copies replayed by the broker on (re)subscribe
/// say what the node last declared, not that it is alive now.
/// </summary>
public sealed record NodeLiveness(DateTimeOffset? LastLease, DateTimeOffset? LastStatus, bool Offline)
{
    /// <summary>The status the node last reported, so a node heard from again gets its own conditions back in place of Unknown.</summary>
    public JsonObject? ReportedStatus { get; init; }

    /// <summary>When the node last said "online" on its presence topic (live).</summary>
    public DateTimeOffset? LastOnline { get; init; }

    /// <summary>The lease duration the node declared: how long its lease holds while its session is open; null before its first lease.</summary>
    public TimeSpan? LeaseDuration { get; init; }

    /// <summary>The <see cref="StatusDigest"/> of the node status last applied to the store.</summary>
    public string? AppliedStatusDigest { get; init; }

    /// <summary>The latest of the times the node was heard from live.</summary>
    public DateTimeOffset? LastHeard => new[] { LastLease, LastStatus, LastOnline }.Max();
}

/// <summary>
/// The master's side of the MQTT contract (docs/protocol.md): publishes each pod bound to a node
/// (retained) and the node's pod index, clears deleted ones; applies node status, pod status, presence
/// and leases from the nodes to the store; asks nodes for logs (MQTT 5 request/response).
/// </summary>
public sealed partial class MqttBridge : IPodLogs, IAsyncDisposable
{
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private readonly BridgeOptions _options;
    private readonly IObjectStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<MqttBridge> _logger;
    private readonly Topics _topics;
    private readonly MqttClientFactory _factory = new();
    private readonly IMqttClient _client;
    private readonly SemaphoreSlim _sync = new(1, 1);
    // What each node was last sent per pod: uid, the resourceVersion it carried, and a digest of the
    // body without status and resourceVersion, so a status-only change is not echoed back to the node.
    private readonly Dictionary<string, Dictionary<string, PublishedPod>> _published = new(StringComparer.Ordinal);

    // The bound pods per node, kept from the last full list and the watch after it (guarded by _sync), so
    // one pod event costs O(pods on its node), not a relist of every pod in the cluster. Each pod is kept
    // as an IndexedPod (identity, uid, resourceVersion and the body a node gets as UTF-8 JSON), not as
    // the JsonObject it came in: read and cloned for every publish, those became whole JsonNode trees,
    // many times the size of their text (2.3 GB of gen2 heap at 5,000 nodes / 40,000 pods).
    private readonly Dictionary<string, Dictionary<string, IndexedPod>> _podsByNode = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _nodeOfPod = new(StringComparer.Ordinal);

    private long _indexedRv;
    private readonly ConcurrentDictionary<string, NodeLiveness> _liveness = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<byte[]>> _pending = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly Dictionary<string, string> _publishedSpecs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _publishedIdentify = new(StringComparer.Ordinal);

    // Each node's route as last seen in the store (guarded by _sync); the table is published from it by
    // PublishRoutesAsync, at most once per RoutePeriod, since every node receives the whole table.
    private readonly SortedDictionary<string, NodeRoute?> _routes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _routesChanged = new(0, int.MaxValue);

    /// <summary>Workers applying node and pod statuses (see <see cref="OnMessageAsync"/>).</summary>
    internal const int StatusWorkers = 16;

    private readonly Channel<(string Topic, Func<Task> Apply)>[] _statusQueues = [.. Enumerable.Range(0, StatusWorkers)
        .Select(_ => Channel.CreateUnbounded<(string, Func<Task>)>(new UnboundedChannelOptions { SingleReader = true }))];
    private long _nodesIndexedRv;
    private string? _publishedRoutes;
    private volatile bool _resync = true;
    private volatile bool _resyncNodes = true;

    public MqttBridge(BridgeOptions options, IObjectStore store, TimeProvider time, ILogger<MqttBridge> logger)
    {
        _options = options;
        _store = store;
        _time = time;
        _logger = logger;
        _topics = new Topics(options.TopicPrefix);
        _client = _factory.CreateMqttClient();
        _client.ApplicationMessageReceivedAsync += OnMessageAsync;
        _client.DisconnectedAsync += e =>
        {
            if (e.ClientWasConnected)
            {
                LogDisconnected(e.Reason.ToString());
            }

            _wake.Release();
            return Task.CompletedTask;
        };
    }

    public bool IsConnected => _client.IsConnected;

    /// <summary>What was last heard from each node.</summary>
    public IReadOnlyDictionary<string, NodeLiveness> Liveness => _liveness;

    /// <summary>Raised when a node's presence or status changes, so the lifecycle controller looks at once.</summary>
    public event Action<string>? NodeChanged;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var connection = KeepConnectedAsync(cancellationToken);
        var pods = FollowPodsAsync(cancellationToken);
        var nodes = FollowNodesAsync(cancellationToken);
        var routes = PublishRoutesAsync(cancellationToken);
        var statuses = _statusQueues.Select(q => ApplyStatusesAsync(q.Reader, cancellationToken));
        await Task.WhenAll([connection, pods, nodes, routes, .. statuses]).ConfigureAwait(false);
    }

    private async Task KeepConnectedAsync(CancellationToken cancellationToken)
    {
        var attempt = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!_client.IsConnected)
            {
                try
                {
                    await ConnectAsync(cancellationToken).ConfigureAwait(false);
                    attempt = 0;
                    _resync = true;
                    _resyncNodes = true;
                    await SyncAllAsync(cancellationToken).ConfigureAwait(false);
                    await SyncNodesAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // Stopped while connecting or resyncing.
                    return;
                }
                catch (Exception e)
                {
                    attempt++;
                    if (attempt == 1 || attempt % 10 == 0)
                    {
                        LogConnectFailed(_options.Broker.ToString(), e.Message);
                    }

                    try
                    {
                        await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, 0.5 * attempt)), _time, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }

                    continue;
                }
            }

            try
            {
                await _wake.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var options = new MqttClientOptionsBuilder()
            .WithClientId("edgekube-master")
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials(_options.Username, _options.Password)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(15))
            .WithCleanStart(true)
            .WithBroker(_options.Broker, _options.CaPem)
            .Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        var result = await _client.ConnectAsync(options, timeout.Token).ConfigureAwait(false);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new InvalidOperationException($"broker refused the connection: {result.ResultCode}");
        }

        var nodes = _topics.Prefix + "/nodes/+";
        var subscribe = _factory.CreateSubscribeOptionsBuilder()
            .WithTopicFilter(nodes + "/status", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter(nodes + "/presence", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter(nodes + "/lease", MqttQualityOfServiceLevel.AtMostOnce)
            .WithTopicFilter(nodes + "/pods/+/+/status", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter(nodes + "/replies/+", MqttQualityOfServiceLevel.AtLeastOnce)
            .Build();
        await _client.SubscribeAsync(subscribe, timeout.Token).ConfigureAwait(false);
        LogConnected(_options.Broker.ToString());
    }

    // ----- master → nodes -----

    private async Task FollowPodsAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var since = await SyncAllAsync(cancellationToken).ConfigureAwait(false);
                await foreach (var e in _store.WatchAsync("pods", null, since, cancellationToken).ConfigureAwait(false))
                {
                    await SyncNodeOfAsync(e, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
            {
                // Fell behind: relist.
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException e)
            {
                // A publish failed (MQTTnet also reports a cancelled one as timed out): unless stopping,
                // relist and publish everything again, so no node misses the change.
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                LogPublishFailed(e.Message);
                _resync = true;
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Publishes every bound pod and every node's index (retained messages overwrite: idempotent); returns the rv it is consistent with.</summary>
    private async Task<long> SyncAllAsync(CancellationToken cancellationToken)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var listed = await IndexAllAsync(cancellationToken).ConfigureAwait(false);
            _indexedRv = listed;
            if (_client.IsConnected)
            {
                foreach (var node in _podsByNode.Keys.Union(_published.Keys, StringComparer.Ordinal).ToList())
                {
                    await PublishNodeAsync(node, PodsOf(node), force: _resync, cancellationToken).ConfigureAwait(false);
                }

                _resync = false;
            }

            return listed;
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <summary>
    /// Rebuilds the index from a full list of the pods and returns the rv it is consistent with; under _sync.
    /// A method of its own so the listed objects are garbage once indexed, not held (every pod of the
    /// cluster) while SyncAllAsync publishes to each node.
    /// </summary>
    private async Task<long> IndexAllAsync(CancellationToken cancellationToken)
    {
        var list = await _store.ListAsync("pods", null, cancellationToken).ConfigureAwait(false);
        _podsByNode.Clear();
        _nodeOfPod.Clear();
        foreach (var pod in list.Items)
        {
            Index(KeyOf(pod), pod);
        }

        return list.ResourceVersion;
    }

    private async Task SyncNodeOfAsync(WatchEvent e, CancellationToken cancellationToken)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A full list made since (on reconnect) already holds this change and any after it.
            if (e.ResourceVersion <= _indexedRv)
            {
                return;
            }

            var key = e.Key.Namespace + "/" + e.Key.Name;
            var before = _nodeOfPod.GetValueOrDefault(key);
            if (e.Type == WatchEventType.Deleted)
            {
                Unindex(key);
            }
            else
            {
                Index(key, e.Object);
            }

            var after = _nodeOfPod.GetValueOrDefault(key);
            if (!_client.IsConnected)
            {
                return;
            }

            foreach (var node in new[] { before, after }.OfType<string>().Distinct(StringComparer.Ordinal))
            {
                await PublishNodeAsync(node, PodsOf(node), force: false, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _sync.Release();
        }
    }

    private static string KeyOf(JsonObject pod) => pod.Namespace() + "/" + pod.Name();

    /// <summary>
    /// Records the pod under its node (or under none while it is unbound), as an <see cref="IndexedPod"/>:
    /// <paramref name="pod"/> itself is not kept.
    /// </summary>
    private void Index(string key, JsonObject pod)
    {
        Unindex(key);
        if (PodNodeIndex.NodeNameOf(pod) is not { } node)
        {
            return;
        }

        if (!_podsByNode.TryGetValue(node, out var pods))
        {
            _podsByNode[node] = pods = new Dictionary<string, IndexedPod>(StringComparer.Ordinal);
        }

        // Read before Body takes resourceVersion out.
        var rv = pod.Metadata().Str("resourceVersion") ?? "0";
        pods[key] = new IndexedPod(pod.Namespace(), pod.Name(), pod.Uid(), rv, Body(pod));
        _nodeOfPod[key] = node;
    }

    /// <summary>
    /// What the node gets of <paramref name="pod"/>, less its resourceVersion, as compact UTF-8 JSON: the pod
    /// without <c>status</c> (the node's to report) and without <c>metadata.resourceVersion</c>, which is what
    /// <see cref="Digest"/> hashes. The pod is the bridge's own copy (a list item or a watch event's object,
    /// used for nothing after), so it is trimmed in place, and status, often most of a running pod, takes no
    /// memory in the index.
    /// </summary>
    private static byte[] Body(JsonObject pod)
    {
        pod.Remove("status");
        pod.Metadata().Remove("resourceVersion");
        return Encoding.UTF8.GetBytes(pod.ToJsonString(Compact));
    }

    private void Unindex(string key)
    {
        if (_nodeOfPod.Remove(key, out var node) && _podsByNode.TryGetValue(node, out var pods))
        {
            pods.Remove(key);
            if (pods.Count == 0)
            {
                _podsByNode.Remove(node);
            }
        }
    }

    private List<IndexedPod> PodsOf(string node) => _podsByNode.TryGetValue(node, out var pods) ? [.. pods.Values] : [];

    /// <summary>The pods the bridge holds for <paramref name="node"/>, by namespace/name: what it publishes to the node.</summary>
    internal IReadOnlyCollection<string> IndexedPods(string node) => _podsByNode.TryGetValue(node, out var pods) ? [.. pods.Keys] : [];

    /// <summary>
    /// Brings one node's retained pod topics and index in line with <paramref name="pods"/>. A pod is
    /// sent again only when what the node gets changed: not when only its status (and with it its
    /// resourceVersion) did, which is mostly the node's own status report coming back. Only the pods
    /// that are sent are parsed.
    /// </summary>
    private async Task PublishNodeAsync(string node, List<IndexedPod> pods, bool force, CancellationToken cancellationToken)
    {
        if (!_published.TryGetValue(node, out var before))
        {
            before = new Dictionary<string, PublishedPod>(StringComparer.Ordinal);
            _published[node] = before;
        }

        var now = new Dictionary<string, PublishedPod>(StringComparer.Ordinal);
        var changed = force;
        foreach (var pod in pods)
        {
            var key = pod.Namespace + "/" + pod.Name;
            var rv = pod.Rv;
            var uid = pod.Uid;
            before.TryGetValue(key, out var was);
            if (!force && was is not null && was.Uid == uid && was.Rv == rv)
            {
                now[key] = was;
                continue;
            }

            // The node gets the pod without its status (the status is the node's to report): the body the
            // index holds, with the pod's resourceVersion put back last in its metadata.
            var digest = Digest(pod.Body);
            if (!force && was is not null && was.Uid == uid && was.Digest == digest)
            {
                now[key] = was;
                continue;
            }

            var body = JsonNode.Parse(pod.Body)!.AsObject();
            body.Metadata()["resourceVersion"] = rv;
            await PublishAsync(_topics.Pod(node, pod.Namespace, pod.Name), Encoding.UTF8.GetBytes(body.ToJsonString(Compact)), cancellationToken).ConfigureAwait(false);
            LogPodPublished(pod.Namespace, pod.Name, node, rv);
            now[key] = new PublishedPod(uid, rv, digest);
            changed = true;
        }

        foreach (var gone in before.Keys.Where(k => !now.ContainsKey(k)).ToList())
        {
            var parts = gone.Split('/', 2);
            await PublishAsync(_topics.Pod(node, parts[0], parts[1]), [], cancellationToken).ConfigureAwait(false);
            changed = true;
        }

        if (changed)
        {
            var index = new PodIndex(
                _store.CurrentResourceVersion.ToString(CultureInfo.InvariantCulture),
                [.. now.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p =>
                {
                    var parts = p.Key.Split('/', 2);
                    return new PodIndexEntry(parts[0], parts[1], p.Value.Uid, p.Value.Rv);
                })]);
            await PublishAsync(_topics.PodIndex(node), JsonSerializer.SerializeToUtf8Bytes(index, ProtocolJson.Default.PodIndex), cancellationToken).ConfigureAwait(false);
        }

        _published[node] = now;
    }

    /// <summary>The digest of a pod body (UTF-8 JSON without status and resourceVersion, see <see cref="Body"/>).</summary>
    private static UInt128 Digest(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    /// <summary>A pod as last published to its node.</summary>
    private sealed record PublishedPod(string Uid, string Rv, UInt128 Digest);

    /// <summary>
    /// A bound pod as the index holds it: what <see cref="PublishNodeAsync"/> reads of every pod to skip the
    /// unchanged ones (identity, uid, resourceVersion), and the <see cref="Body"/> it hashes, and parses and
    /// sends for the others.
    /// </summary>
    private sealed record IndexedPod(string Namespace, string Name, string Uid, string Rv, byte[] Body);

    private async Task PublishAsync(string topic, byte[] payload, CancellationToken cancellationToken)
    {
        var message = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithRetainFlag(true)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();
        await _client.PublishAsync(message, cancellationToken).ConfigureAwait(false);
    }

    private async Task FollowNodesAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var since = await SyncNodesAsync(cancellationToken).ConfigureAwait(false);
                await foreach (var e in _store.WatchAsync("nodes", null, since, cancellationToken).ConfigureAwait(false))
                {
                    await SyncNodeAsync(e, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException)
            {
                // Lost the broker mid-publish (or stopping): everything is published again on reconnect.
                _resyncNodes = true;
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Publishes each node's spec (podCIDR, taints, unschedulable) on <c>nodes/{node}/spec</c>, its identify
    /// request on <c>nodes/{node}/identify</c> and the cluster's route table on <c>cluster/routes</c>, all
    /// retained and only when changed; clears them for a deleted node. Returns the rv it is consistent with.
    /// </summary>
    private async Task<long> SyncNodesAsync(CancellationToken cancellationToken)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var list = await _store.ListAsync("nodes", null, cancellationToken).ConfigureAwait(false);
            _routes.Clear();
            foreach (var node in list.Items)
            {
                _routes[node.Name()] = RouteOf(node);
            }

            _nodesIndexedRv = list.ResourceVersion;
            if (!_client.IsConnected)
            {
                return list.ResourceVersion;
            }

            var force = _resyncNodes;
            _resyncNodes = false;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var node in list.Items)
            {
                seen.Add(node.Name());
                await PublishSpecAsync(node, force, cancellationToken).ConfigureAwait(false);
            }

            foreach (var gone in _publishedSpecs.Keys.Union(_publishedIdentify.Keys).Where(n => !seen.Contains(n)).ToList())
            {
                await ClearNodeAsync(gone, cancellationToken).ConfigureAwait(false);
            }

            await PublishRoutesNowAsync(force, cancellationToken).ConfigureAwait(false);
            return list.ResourceVersion;
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <summary>
    /// One node changed: its spec is published if it changed; a changed route is left to
    /// <see cref="PublishRoutesAsync"/>. O(1) per event: relisting every node for each of them made a
    /// cluster of N registering nodes cost O(N²).
    /// </summary>
    private async Task SyncNodeAsync(WatchEvent e, CancellationToken cancellationToken)
    {
        await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A full list made since (on reconnect) already holds this change.
            if (e.ResourceVersion <= _nodesIndexedRv)
            {
                return;
            }

            var name = e.Key.Name;
            var route = e.Type == WatchEventType.Deleted ? null : RouteOf(e.Object);
            var hadRoute = _routes.TryGetValue(name, out var was);
            if (e.Type == WatchEventType.Deleted)
            {
                _routes.Remove(name);
            }
            else
            {
                _routes[name] = route;
            }

            if (was != route || (e.Type == WatchEventType.Deleted && hadRoute))
            {
                _routesChanged.Release();
            }

            if (!_client.IsConnected)
            {
                return;
            }

            if (e.Type == WatchEventType.Deleted)
            {
                await ClearNodeAsync(name, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await PublishSpecAsync(e.Object, force: false, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <summary>Clears the retained spec and identify of a node that is gone; under _sync.</summary>
    private async Task ClearNodeAsync(string name, CancellationToken cancellationToken)
    {
        if (_publishedSpecs.Remove(name))
        {
            await PublishAsync(_topics.NodeSpec(name), [], cancellationToken).ConfigureAwait(false);
        }

        if (_publishedIdentify.Remove(name, out var identified) && identified.Length > 0)
        {
            await PublishAsync(_topics.Identify(name), [], cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PublishSpecAsync(JsonObject node, bool force, CancellationToken cancellationToken)
    {
        var name = node.Name();
        var spec = (node["spec"] as JsonObject)?.ToJsonString(Compact) ?? "{}";
        if (force || !_publishedSpecs.TryGetValue(name, out var was) || was != spec)
        {
            await PublishAsync(_topics.NodeSpec(name), Encoding.UTF8.GetBytes(spec), cancellationToken).ConfigureAwait(false);
            _publishedSpecs[name] = spec;
        }

        // Identify goes to this node's own topic only (its ACL lets no other node read it). An empty
        // payload is published on a resync too, so an external broker keeps no identify the master ended while away.
        var identify = Controllers.IdentifyController.Payload(node);
        var identifyText = Encoding.UTF8.GetString(identify);
        if (force || _publishedIdentify.GetValueOrDefault(name, string.Empty) != identifyText)
        {
            await PublishAsync(_topics.Identify(name), identify, cancellationToken).ConfigureAwait(false);
            _publishedIdentify[name] = identifyText;
        }
    }

    /// <summary>Publishes the route table when it differs from the one published (or always, when forced); under _sync.</summary>
    private async Task PublishRoutesNowAsync(bool force, CancellationToken cancellationToken)
    {
        var routes = new RouteTable(_options.ClusterCidr, [.. _routes.Values.OfType<NodeRoute>()]);
        var json = JsonSerializer.Serialize(routes, ProtocolJson.Default.RouteTable);
        if (force || json != _publishedRoutes)
        {
            await PublishAsync(_topics.Routes, Encoding.UTF8.GetBytes(json), cancellationToken).ConfigureAwait(false);
            _publishedRoutes = json;
        }
    }

    /// <summary>
    /// How long after publishing the route table the next one waits, gathering the changes meanwhile. Every
    /// node receives the whole table (O(nodes) bytes) on each publish, so while nodes register one after
    /// another the table goes out a bounded number of times instead of once per node: 10 ms per node, at
    /// most 10 s (kube-controller-manager reconciles routes every 10 s).
    /// </summary>
    internal TimeSpan RoutePeriod => TimeSpan.FromMilliseconds(Math.Min(10_000, 10 * _routes.Count));

    /// <summary>Publishes the route table after route changes: at once, then at most once per <see cref="RoutePeriod"/>.</summary>
    private async Task PublishRoutesAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _routesChanged.WaitAsync(cancellationToken).ConfigureAwait(false);
                while (_routesChanged.CurrentCount > 0)
                {
                    await _routesChanged.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                TimeSpan period;
                await _sync.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    if (_client.IsConnected)
                    {
                        await PublishRoutesNowAsync(force: false, cancellationToken).ConfigureAwait(false);
                    }

                    period = RoutePeriod;
                }
                finally
                {
                    _sync.Release();
                }

                await Task.Delay(period, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException)
            {
                // Lost the broker mid-publish: the table goes out again with everything on reconnect.
                _resyncNodes = true;
            }
        }
    }

    /// <summary>A node's route: its pod CIDR via its InternalIP; null until it has both.</summary>
    public static NodeRoute? RouteOf(JsonObject node)
    {
        var cidr = node["spec"]?["podCIDR"]?.GetValue<string>();
        var ip = (node["status"]?["addresses"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(a => a.Str("type") == "InternalIP")?.Str("address");
        return cidr is { Length: > 0 } && ip is { Length: > 0 } ? new NodeRoute(node.Name(), cidr, ip) : null;
    }

    // ----- nodes → master -----

    private Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        var message = e.ApplicationMessage;
        if (!_topics.TryParseNodeTopic(message.Topic, out var node, out var rest))
        {
            return Task.CompletedTask;
        }

        var payload = message.Payload.ToArray();
        // Delivered live (not a retained copy replayed on subscribe): the node published it just now,
        // over an MQTT session that is open.
        var live = !message.Retain;
        try
        {
            switch (rest)
            {
                case ["status"]:
                    // Store writes go to the workers (statuses of one node or pod always to the same one, so
                    // they keep their order): applied inline, each message waited for its commit in turn,
                    // and leases queued behind them arrived late enough to make live nodes look lost.
                    if (HeardNodeStatus(node, payload, live) is { } reported)
                    {
                        var digest = StatusDigest.Of(payload);
                        Enqueue(node, message.Topic, () => ApplyNodeStatusAsync(node, reported, digest));
                    }

                    break;
                case ["presence"]:
                    ApplyPresence(node, Encoding.UTF8.GetString(payload), live);
                    break;
                case ["lease"]:
                    ApplyLease(node, payload, live);
                    break;
                case ["pods", var ns, var name, "status"]:
                    Enqueue(name, message.Topic, () => ApplyPodStatusAsync(node, ns, name, payload));
                    break;
                case ["replies", _]:
                    if (message.CorrelationData is { Length: > 0 } correlation
                        && _pending.TryRemove(Convert.ToHexString(correlation), out var waiter))
                    {
                        waiter.TrySetResult(payload);
                    }

                    break;
            }
        }
        catch (Exception ex) when (ex is JsonException or StoreException or InvalidOperationException or FormatException)
        {
            // Garbage from one node never stops the bridge.
            LogBadMessage(message.Topic, ex.Message);
        }

        return Task.CompletedTask;
    }

    private void ApplyPresence(string node, string presence, bool live)
    {
        var offline = presence == Presence.Offline;
        var now = _time.GetUtcNow();
        DateTimeOffset? online = live && !offline ? now : null;
        _liveness.AddOrUpdate(node, _ => new NodeLiveness(null, null, offline) { LastOnline = online },
            (_, l) => l with { Offline = offline, LastOnline = online ?? l.LastOnline });
        NodeChanged?.Invoke(node);
    }

    /// <summary>
    /// A lease: renews the node (when live) and records the duration it declared. When its status
    /// digest is not that of the status the store holds (a status lost on the way, or one that could
    /// not be applied), the node is asked to publish its status again: kubelet's periodic status
    /// report, at the cost of a digest per lease instead of a full status.
    /// </summary>
    private void ApplyLease(string node, byte[] payload, bool live)
    {
        var lease = JsonSerializer.Deserialize(payload, ProtocolJson.Default.Lease) ?? throw new JsonException("empty lease");
        var duration = lease.DurationSeconds > 0 ? TimeSpan.FromSeconds(lease.DurationSeconds) : (TimeSpan?)null;
        var now = _time.GetUtcNow();
        var liveness = _liveness.AddOrUpdate(node,
            _ => new NodeLiveness(live ? now : null, null, false) { LeaseDuration = duration },
            (_, l) => live ? l with { LastLease = now, Offline = false, LeaseDuration = duration } : l with { LeaseDuration = duration });
        if (live && lease.Status is { Length: > 0 } digest && digest != liveness.AppliedStatusDigest && _client.IsConnected)
        {
            LogStatusStale(node, digest, liveness.AppliedStatusDigest ?? "none");
            // Not awaited: this runs in the client's receive handler, which must not wait for an acknowledgement.
            _ = RequestStatusAsync(node);
        }
    }

    private async Task RequestStatusAsync(string node)
    {
        try
        {
            var request = new MqttApplicationMessageBuilder().WithTopic(_topics.Rpc(node, Topics.ResendStatus))
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();
            await _client.PublishAsync(request).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
        {
            // The next lease asks again.
        }
    }

    /// <summary>What a node status says about the node's liveness; taken at once, in order with presence and leases.</summary>
    private JsonObject? HeardNodeStatus(string node, byte[] payload, bool live)
    {
        if (payload.Length == 0)
        {
            return null;
        }

        var reported = JsonNode.Parse(payload) as JsonObject ?? throw new JsonException("node status is not an object");
        var now = _time.GetUtcNow();
        var reportedStatus = reported["status"]?.DeepClone() as JsonObject;
        _liveness.AddOrUpdate(node,
            _ => new NodeLiveness(null, live ? now : null, false) { ReportedStatus = reportedStatus },
            (_, l) => live ? l with { LastStatus = now, Offline = false, ReportedStatus = reportedStatus } : l with { ReportedStatus = reportedStatus });
        return reported;
    }

    private async Task ApplyNodeStatusAsync(string node, JsonObject reported, string digest)
    {
        var key = new ObjectKey("nodes", string.Empty, node);
        var now = _time.GetUtcNow();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var current = await _store.GetAsync(key).ConfigureAwait(false);
            try
            {
                if (current is null)
                {
                    var created = new JsonObject
                    {
                        ["apiVersion"] = "v1",
                        ["kind"] = "Node",
                        ["metadata"] = new JsonObject
                        {
                            ["name"] = node,
                            ["uid"] = Guid.NewGuid().ToString(),
                            ["creationTimestamp"] = ObjectMeta.Time(now),
                            ["labels"] = reported["metadata"]?["labels"]?.DeepClone() ?? new JsonObject(),
                            ["annotations"] = reported["metadata"]?["annotations"]?.DeepClone() ?? new JsonObject(),
                        },
                        ["spec"] = reported["spec"]?.DeepClone() ?? new JsonObject(),
                        ["status"] = reported["status"]?.DeepClone(),
                    };
                    await _store.CreateAsync(key, created).ConfigureAwait(false);
                    LogRegistered(node);
                }
                else
                {
                    // The node owns its status and the labels it reports; labels and annotations set through the API stay.
                    var before = current.DeepClone();
                    NodeReport.Merge(current, reported);
                    current["status"] = reported["status"]?.DeepClone();

                    // Unchanged (a node reconnecting republishes the status it had): no write, as the API server
                    // leaves the resourceVersion alone for a no-op update; 1,000 reconnecting nodes cost no commits.
                    if (!JsonNode.DeepEquals(before, current))
                    {
                        await _store.UpdateAsync(key, current, current.ResourceVersion()).ConfigureAwait(false);
                    }
                }

                _liveness.AddOrUpdate(node, _ => new NodeLiveness(null, null, false) { AppliedStatusDigest = digest }, (_, l) => l with { AppliedStatusDigest = digest });
                NodeChanged?.Invoke(node);
                return;
            }
            catch (StoreException e) when (e.Kind is StoreErrorKind.Conflict or StoreErrorKind.AlreadyExists)
            {
            }
        }
    }

    private void Enqueue(string key, string topic, Func<Task> apply) =>
        _statusQueues[(StringComparer.Ordinal.GetHashCode(key) & int.MaxValue) % _statusQueues.Length].Writer.TryWrite((topic, apply));

    private async Task ApplyStatusesAsync(ChannelReader<(string Topic, Func<Task> Apply)> queue, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var (topic, apply) in queue.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await apply().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is JsonException or StoreException or InvalidOperationException or FormatException)
                {
                    // Garbage from one node never stops the bridge.
                    LogBadMessage(topic, ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ApplyPodStatusAsync(string node, string ns, string name, byte[] payload)
    {
        var key = new ObjectKey("pods", ns, name);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var current = await _store.GetAsync(key).ConfigureAwait(false);
            if (current is null || PodNodeIndex.NodeNameOf(current) != node)
            {
                return;
            }

            try
            {
                if (payload.Length == 0)
                {
                    // The node has stopped and removed the pod: a deletion in progress is finished (the pod goes, or
                    // waits for its finalizers marked as stopped).
                    if (current.Metadata()["deletionTimestamp"] is not null && !ObjectWriter.IsStopped(current))
                    {
                        var held = ObjectWriter.Finalizers(current);
                        await ObjectWriter.FinishPodAsync(_store, _time, key, current, CancellationToken.None).ConfigureAwait(false);
                        if (held.Count == 0)
                        {
                            LogDeleted(ns, name, node);
                        }
                        else
                        {
                            LogHeld(ns, name, node, string.Join(",", held));
                        }
                    }

                    return;
                }

                var reported = JsonNode.Parse(payload) as JsonObject ?? throw new JsonException("pod status is not an object");
                if (reported["metadata"]?["uid"]?.GetValue<string>() != current.Uid())
                {
                    // The status of an older incarnation of the pod.
                    return;
                }

                var status = reported["status"] as JsonObject ?? [];
                // PodScheduled is the scheduler's: keep it as the master set it.
                var scheduled = (current["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c.Str("type") == "PodScheduled");
                if (scheduled is not null && status["conditions"] is JsonArray conditions)
                {
                    foreach (var c in conditions.OfType<JsonObject>().Where(c => c.Str("type") == "PodScheduled").ToList())
                    {
                        conditions.Remove(c);
                    }

                    conditions.Add(scheduled.DeepClone());
                }

                // Unchanged (republished on reconnect): no write, so no new resourceVersion, no watch event and
                // no republish of the pod to its node; after a reconnect storm 10,000 pods cost nothing here.
                if (JsonNode.DeepEquals(current["status"], status))
                {
                    return;
                }

                current["status"] = status.DeepClone();
                await _store.UpdateAsync(key, current, current.ResourceVersion()).ConfigureAwait(false);
                LogPodStatusApplied(ns, name, node, status.Str("phase") ?? string.Empty);
                return;
            }
            catch (StoreException e) when (e.Kind is StoreErrorKind.Conflict)
            {
            }
        }
    }

    // ----- rpc -----

    public async Task<LogsReply> GetAsync(string node, LogsRequest request, CancellationToken cancellationToken)
    {
        if (!_client.IsConnected)
        {
            return new LogsReply(string.Empty, 0, "the master is not connected to the broker", false);
        }

        var id = Guid.NewGuid().ToString("N");
        var waiter = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var correlation = Convert.FromHexString(id);
        _pending[id.ToUpperInvariant()] = waiter;
        try
        {
            var message = new MqttApplicationMessageBuilder()
                .WithTopic(_topics.Rpc(node, "logs"))
                .WithPayload(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.Default.LogsRequest))
                .WithResponseTopic(_topics.Reply(node, id))
                .WithCorrelationData(correlation)
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .Build();
            await _client.PublishAsync(message, cancellationToken).ConfigureAwait(false);
            var reply = await waiter.Task.WaitAsync(TimeSpan.FromSeconds(15), _time, cancellationToken).ConfigureAwait(false);
            return JsonSerializer.Deserialize(reply, ProtocolJson.Default.LogsReply) ?? new LogsReply(string.Empty, 0, "empty reply from the node", false);
        }
        catch (TimeoutException)
        {
            return new LogsReply(string.Empty, 0, $"node {node} did not answer the logs request (is it connected?)", false);
        }
        finally
        {
            _pending.TryRemove(id.ToUpperInvariant(), out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException)
            {
            }
        }

        _client.Dispose();
    }

    [LoggerMessage(EventId = 4000, Level = LogLevel.Information, Message = "Bridge connected to broker {Url}")]
    private partial void LogConnected(string url);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Bridge cannot reach broker {Url}: {Error}; retrying")]
    private partial void LogConnectFailed(string url, string error);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Bridge disconnected from the broker: {Reason}")]
    private partial void LogDisconnected(string reason);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "Ignoring a bad message on {Topic}: {Error}")]
    private partial void LogBadMessage(string topic, string error);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Node {Node} registered")]
    private partial void LogRegistered(string node);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} stopped by node {Node}; kept until its finalizers ({Finalizers}) are removed")]
    private partial void LogHeld(string @namespace, string name, string node, string finalizers);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Bridge could not publish pods: {Error}; publishing all again")]
    private partial void LogPublishFailed(string error);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Debug, Message = "Pod {Namespace}/{Name} published to node {Node} (resourceVersion {ResourceVersion})")]
    private partial void LogPodPublished(string @namespace, string name, string node, string resourceVersion);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Debug, Message = "Status of pod {Namespace}/{Name} from node {Node} applied: {Phase}")]
    private partial void LogPodStatusApplied(string @namespace, string name, string node, string phase);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "Node {Node}: its lease names status {Digest}, the store holds {Applied}; asking for the status again")]
    private partial void LogStatusStale(string node, string digest, string applied);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Pod {Namespace}/{Name} deleted: node {Node} has stopped it")]
    private partial void LogDeleted(string @namespace, string name, string node);
}
