using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeKube.Broker;
using EdgeKube.Master.Bridge;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace EdgeKube.Master.Tests.Bridge;

/// <summary>
/// The bridge against a real (embedded) broker and the in-memory store: what each node finds in its
/// retained pod topics and pod index as pods are created, bound, changed and deleted; and that a pod
/// event costs no relist of the whole store (the per-node index the bridge keeps from the watch).
/// </summary>
public sealed class MqttBridgeTests : IAsyncLifetime
{
    private const string Prefix = "edgekube/v1";
    private readonly string _dataDir = Directory.CreateTempSubdirectory("edgekube-bridge-").FullName;
    private readonly CountingStore _store = new(new InMemoryObjectStore());
    private readonly Topics _topics = new(Prefix);
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, string> _retained = new(StringComparer.Ordinal);
    private EmbeddedBroker _broker = null!;
    private MqttBridge _bridge = null!;
    private Task _run = Task.CompletedTask;
    private readonly List<IMqttClient> _nodes = [];
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _received = new();
    private int _port;
    private string _masterPassword = string.Empty;

    public async Task InitializeAsync()
    {
        var credentials = new CredentialStore(_dataDir);
        var masterPassword = _masterPassword = credentials.Create(NodeAcl.MasterUser);
        var port = _port = FreePort();
        _broker = new EmbeddedBroker(new IPEndPoint(IPAddress.Loopback, port), credentials, new NodeAcl(Prefix), NullLogger.Instance);
        await _broker.StartAsync();
        foreach (var node in new[] { "node-a", "node-b" })
        {
            var password = credentials.Create(node);
            var client = new MqttClientFactory().CreateMqttClient();
            client.ApplicationMessageReceivedAsync += e =>
            {
                // Counted before it is visible: a test that waits for the payload then reads a count that includes it.
                _received.Enqueue(e.ApplicationMessage.Topic);
                lock (_retained)
                {
                    _retained[e.ApplicationMessage.Topic] = e.ApplicationMessage.ConvertPayloadToString() ?? string.Empty;
                }

                return Task.CompletedTask;
            };
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithClientId("edgekube-agent-" + node).WithCredentials(node, password)
                .WithProtocolVersion(MqttProtocolVersion.V500).WithTcpServer("127.0.0.1", port).Build());
            await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                .WithTopicFilter(_topics.Node(node) + "/pods/+/+", MqttQualityOfServiceLevel.AtLeastOnce)
                .WithTopicFilter(_topics.PodIndex(node), MqttQualityOfServiceLevel.AtLeastOnce)
                .WithTopicFilter(_topics.Node(node) + "/rpc/#", MqttQualityOfServiceLevel.AtLeastOnce)
                .WithTopicFilter(_topics.Identify(node), MqttQualityOfServiceLevel.AtLeastOnce).Build());
            _nodes.Add(client);
        }

        _bridge = new MqttBridge(new BridgeOptions(new Uri($"mqtt://127.0.0.1:{port}"), NodeAcl.MasterUser, masterPassword, Prefix), _store, TimeProvider.System, NullLogger<MqttBridge>.Instance);
        _run = _bridge.RunAsync(_stop.Token);
        await Until(() => _bridge.IsConnected, "the bridge to connect");
    }

    [Fact]
    public async Task Each_node_gets_exactly_its_pods_as_they_are_bound_changed_and_deleted_without_relisting_the_store()
    {
        await CreatePodAsync("web", "node-a");
        await CreatePodAsync("db", "node-b");
        await CreatePodAsync("pending", null);
        await Until(() => IndexOf("node-a").SequenceEqual(["default/web"]) && IndexOf("node-b").SequenceEqual(["default/db"]), "the first indexes");

        // Watch events are handled from the bridge's own index from here on: no list of the store.
        var lists = _store.Lists;

        // Bound later (as the scheduler does): the pod appears on its node.
        var pending = (await _store.GetAsync(Key("pending")))!;
        pending["spec"]!["nodeName"] = "node-a";
        await _store.UpdateAsync(Key("pending"), pending);
        await Until(() => IndexOf("node-a").SequenceEqual(["default/pending", "default/web"]), "the bound pod in node-a's index");
        Assert.Contains("\"nodeName\":\"node-a\"", Retained(_topics.Pod("node-a", "default", "pending")));

        // A changed spec is republished, without the status (that is the node's to report).
        var web = (await _store.GetAsync(Key("web")))!;
        web["metadata"]!["labels"] = new JsonObject { ["v"] = "2" };
        web["status"] = new JsonObject { ["phase"] = "Running" };
        var updated = await _store.UpdateAsync(Key("web"), web);
        var rv = updated["metadata"]!["resourceVersion"]!.GetValue<string>();
        await Until(() => Retained(_topics.Pod("node-a", "default", "web")).Contains($"\"resourceVersion\":\"{rv}\"", StringComparison.Ordinal), "the changed pod");
        Assert.DoesNotContain("\"status\"", Retained(_topics.Pod("node-a", "default", "web")));

        // Deleted: its retained topic is cleared and it leaves the index; the other node is untouched.
        await _store.DeleteAsync(Key("web"));
        await Until(() => IndexOf("node-a").SequenceEqual(["default/pending"]) && Retained(_topics.Pod("node-a", "default", "web")).Length == 0, "the deleted pod gone");
        Assert.Equal(["default/db"], IndexOf("node-b"));
        Assert.Equal(["default/pending"], _bridge.IndexedPods("node-a").Order(StringComparer.Ordinal));
        Assert.Equal(["default/db"], _bridge.IndexedPods("node-b"));

        // A new pod of the same name is a new incarnation (new uid) on node-b.
        await CreatePodAsync("web", "node-b");
        await Until(() => IndexOf("node-b").SequenceEqual(["default/db", "default/web"]), "the recreated pod on node-b");
        Assert.Equal(["default/pending"], IndexOf("node-a"));
        Assert.Equal(lists, _store.Lists);
    }

    [Fact]
    public async Task A_status_change_alone_is_not_sent_back_to_the_node()
    {
        await CreatePodAsync("web", "node-a");
        await Until(() => IndexOf("node-a").SequenceEqual(["default/web"]), "the pod on node-a");
        var webTopic = _topics.Pod("node-a", "default", "web");
        var sent = Count(webTopic);
        var indexes = Count(_topics.PodIndex("node-a"));

        // The node's own status report comes back as a new resourceVersion of the pod: nothing for the node.
        var web = (await _store.GetAsync(Key("web")))!;
        web["status"] = new JsonObject { ["phase"] = "Running" };
        await _store.UpdateAsync(Key("web"), web);

        // Watch events are handled in order: once a later pod has reached the node, the status change was handled.
        await CreatePodAsync("later", "node-a");
        await Until(() => IndexOf("node-a").SequenceEqual(["default/later", "default/web"]), "the later pod");
        Assert.Equal(sent, Count(webTopic));
        Assert.Equal(indexes + 1, Count(_topics.PodIndex("node-a")));

        // A change of what the node gets (here a label) is sent, with the pod's current resourceVersion.
        web = (await _store.GetAsync(Key("web")))!;
        web["metadata"]!["labels"] = new JsonObject { ["tier"] = "front" };
        var rv = (await _store.UpdateAsync(Key("web"), web))["metadata"]!["resourceVersion"]!.GetValue<string>();
        await Until(() => Retained(webTopic).Contains($"\"resourceVersion\":\"{rv}\"", StringComparison.Ordinal), "the relabelled pod");
        Assert.Equal(sent + 1, Count(webTopic));
    }

    [Fact]
    public async Task A_node_gets_exactly_the_stored_pod_without_its_status_and_with_its_resourceVersion_last()
    {
        // Text that escaping or number formatting could change on its way through the bridge's index.
        await CreatePodAsync("web", "node-a");
        var web = (await _store.GetAsync(Key("web")))!;
        web["metadata"]!["annotations"] = new JsonObject { ["note"] = "café <b> \"quoted\" \\ \u2028", ["empty"] = null };
        web["spec"]!["priority"] = 1.5e3;
        web["spec"]!["terminationGracePeriodSeconds"] = 30;
        web["status"] = new JsonObject { ["phase"] = "Pending" };
        await _store.UpdateAsync(Key("web"), web);
        var webTopic = _topics.Pod("node-a", "default", "web");
        await Until(() => Retained(webTopic) == Expected(_store.GetAsync(Key("web")).Result!), "the pod as stored, less its status");

        // A changed label: the node gets the new content, exactly.
        web = (await _store.GetAsync(Key("web")))!;
        web["metadata"]!["labels"] = new JsonObject { ["tier"] = "front" };
        web["status"] = new JsonObject { ["phase"] = "Running" };
        await _store.UpdateAsync(Key("web"), web);
        await Until(() => Retained(webTopic) == Expected(_store.GetAsync(Key("web")).Result!), "the relabelled pod as stored, less its status");
        Assert.Contains("\"labels\":{\"tier\":\"front\"}", Retained(webTopic));

        // What the bridge sent before it kept its index as bytes: the pod without status, resourceVersion moved last.
        static string Expected(JsonObject stored)
        {
            var body = stored.DeepClone().AsObject();
            body.Remove("status");
            var metadata = body["metadata"]!.AsObject();
            var rv = metadata["resourceVersion"]!.GetValue<string>();
            metadata.Remove("resourceVersion");
            metadata["resourceVersion"] = rv;
            return body.ToJsonString();
        }
    }

    [Fact]
    public async Task A_lease_renews_the_node_and_a_digest_that_is_not_the_applied_status_asks_for_the_status_again()
    {
        var node = _nodes[0];
        var status = """{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"""u8.ToArray();
        await PublishAsync(node, _topics.NodeStatus("node-a"), status, retain: true, MqttQualityOfServiceLevel.AtLeastOnce);
        await Until(() => _bridge.Liveness.TryGetValue("node-a", out var l) && l.AppliedStatusDigest == StatusDigest.Of(status), "the status applied");
        var requests = Count(_topics.Rpc("node-a", Topics.ResendStatus));

        // The lease names the status the store holds: renewed, duration recorded, nothing asked.
        await PublishAsync(node, _topics.Lease("node-a"), Lease(600, StatusDigest.Of(status)), retain: true, MqttQualityOfServiceLevel.AtMostOnce);
        await Until(() => _bridge.Liveness["node-a"] is { LeaseDuration.TotalSeconds: 600, LastLease: not null }, "the lease");

        // It names another status (one that never reached the master): the node is asked to publish it again.
        await PublishAsync(node, _topics.Lease("node-a"), Lease(600, "0123456789abcdef"), retain: true, MqttQualityOfServiceLevel.AtMostOnce);
        await Until(() => Count(_topics.Rpc("node-a", Topics.ResendStatus)) == requests + 1, "the request for the status");
        Assert.Equal(requests + 1, Count(_topics.Rpc("node-a", Topics.ResendStatus)));

        // A master that connects later (this one stops first: one master session) gets the retained lease:
        // it learns the duration, but a retained copy is no proof of life.
        await _stop.CancelAsync();
        await _run;
        await using var late = new MqttBridge(new BridgeOptions(new Uri($"mqtt://127.0.0.1:{_port}"), NodeAcl.MasterUser, _masterPassword, Prefix) { }, _store, TimeProvider.System, NullLogger<MqttBridge>.Instance);
        using var stop = new CancellationTokenSource();
        var run = late.RunAsync(stop.Token);
        await Until(() => late.Liveness.TryGetValue("node-a", out var l) && l.LeaseDuration is not null && l.ReportedStatus is not null, "the retained lease and status at the late master");
        Assert.Null(late.Liveness["node-a"].LastHeard);
        await stop.CancelAsync();
        await run;
    }

    private static byte[] Lease(int seconds, string digest) => JsonSerializer.SerializeToUtf8Bytes(new Lease(seconds, digest), ProtocolJson.Default.Lease);

    private static Task PublishAsync(IMqttClient client, string topic, byte[] payload, bool retain, MqttQualityOfServiceLevel qos) =>
        client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithRetainFlag(retain).WithQualityOfServiceLevel(qos).Build());

    private int Count(string topic) => _received.Count(t => t == topic);

    [Fact]
    public async Task A_pod_its_node_has_removed_goes_unless_finalizers_hold_it()
    {
        await CreatePodAsync("free", "node-a");
        await CreatePodAsync("held", "node-a", finalizer: "batch.kubernetes.io/job-tracking");
        foreach (var name in new[] { "free", "held" })
        {
            // Being deleted, as the API server marks a bound pod.
            var pod = (await _store.GetAsync(Key(name)))!;
            pod["metadata"]!["deletionTimestamp"] = "2026-05-01T12:00:30Z";
            pod["metadata"]!["deletionGracePeriodSeconds"] = 30;
            pod["status"] = new JsonObject { ["phase"] = "Running" };
            await _store.UpdateAsync(Key(name), pod);
        }

        // The node has stopped both and says so with an empty status.
        foreach (var name in new[] { "free", "held" })
        {
            await _nodes[0].PublishAsync(new MqttApplicationMessageBuilder().WithTopic(_topics.PodStatus("node-a", "default", name))
                .WithPayload(Array.Empty<byte>()).WithRetainFlag(true).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        }

        await Until(() => _store.GetAsync(Key("free")).Result is null, "the pod without finalizers to go");
        await Until(() => _store.GetAsync(Key("held")).Result?["metadata"]?["deletionGracePeriodSeconds"]?.GetValue<long>() == 0, "the held pod to be marked stopped");
        var held = (await _store.GetAsync(Key("held")))!;
        Assert.Equal("Failed", held["status"]!["phase"]!.GetValue<string>());
        Assert.Equal("batch.kubernetes.io/job-tracking", held["metadata"]!["finalizers"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task Identify_goes_to_its_node_alone_and_a_nodes_report_replaces_the_sensor_keys_it_owns()
    {
        foreach (var name in new[] { "node-a", "node-b" })
        {
            await _store.CreateAsync(new ObjectKey("nodes", string.Empty, name), new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Node",
                ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = name, ["labels"] = new JsonObject { ["site"] = "lab" }, ["annotations"] = new JsonObject() },
                ["spec"] = new JsonObject(),
            });
        }

        // The annotations as the identify controller leaves them: the bridge publishes the request to node-a only.
        var nodeA = new ObjectKey("nodes", string.Empty, "node-a");
        var a = (await _store.GetAsync(nodeA))!;
        a["metadata"]!["annotations"]![NodeKeys.Identify] = "30s";
        a["metadata"]!["annotations"]![NodeKeys.IdentifyUntil] = "2026-01-01T00:00:30.000000Z";
        await _store.UpdateAsync(nodeA, a);
        await Until(() => Retained(_topics.Identify("node-a")).Length > 0, "node-a's identify");
        Assert.Equal(new IdentifyRequest("30s", 30, new DateTimeOffset(2026, 1, 1, 0, 0, 30, TimeSpan.Zero)), JsonSerializer.Deserialize(Retained(_topics.Identify("node-a")), ProtocolJson.Default.IdentifyRequest));
        Assert.Equal(string.Empty, Retained(_topics.Identify("node-b")));

        // node-a reports two sensors, then one: the other's label and annotations go, the person's label stays.
        await ReportAsync(0, new() { ["sensors.edgekube.io/air"] = "bme280", ["sensors.edgekube.io/door"] = "gpio-input" },
            new() { [NodeKeys.Sensors] = """[{"name":"air"},{"name":"door"}]""", [SensorTemperature] = "21 °C", ["edgekube.io/door.state"] = "on" });
        await Until(() => Annotation(nodeA, "edgekube.io/door.state") == "on", "the first report");
        await ReportAsync(0, new() { ["sensors.edgekube.io/air"] = "bme280" }, new() { [NodeKeys.Sensors] = """[{"name":"air"}]""", [SensorTemperature] = "22 °C" });
        await Until(() => Annotation(nodeA, SensorTemperature) == "22 °C", "the second report");
        var stored = (await _store.GetAsync(nodeA))!;
        Assert.Equal(["sensors.edgekube.io/air", "site"], stored["metadata"]!["labels"]!.AsObject().Select(l => l.Key).Order(StringComparer.Ordinal));
        Assert.Equal([SensorTemperature, NodeKeys.Identify, NodeKeys.IdentifyUntil, NodeKeys.Sensors], stored["metadata"]!["annotations"]!.AsObject().Select(l => l.Key).Order(StringComparer.Ordinal));

        // The identify over (the controller removes the annotations): the topic is cleared.
        stored["metadata"]!["annotations"]!.AsObject().Remove(NodeKeys.Identify);
        await _store.UpdateAsync(nodeA, stored);
        await Until(() => Retained(_topics.Identify("node-a")).Length == 0, "node-a's identify cleared");
    }

    private const string SensorTemperature = "edgekube.io/air.temperature";

    private string? Annotation(ObjectKey node, string key) => _store.GetAsync(node).Result?["metadata"]?["annotations"]?[key]?.GetValue<string>();

    /// <summary>A node status message as the agent publishes it, from node client <paramref name="client"/>.</summary>
    private async Task ReportAsync(int client, Dictionary<string, string> labels, Dictionary<string, string> annotations)
    {
        var node = client == 0 ? "node-a" : "node-b";
        var report = new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = node,
                ["labels"] = new JsonObject([.. labels.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))]),
                ["annotations"] = new JsonObject([.. annotations.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))]),
            },
            ["status"] = new JsonObject(),
        };
        await _nodes[client].PublishAsync(new MqttApplicationMessageBuilder().WithTopic(_topics.NodeStatus(node)).WithPayload(report.ToJsonString())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build());
    }

    private static ObjectKey Key(string name) => new("pods", "default", name);

    private async Task CreatePodAsync(string name, string? node, string? finalizer = null)
    {
        var spec = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "busybox" }) };
        if (node is not null)
        {
            spec["nodeName"] = node;
        }

        await _store.CreateAsync(Key(name), new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject
            {
                ["name"] = name,
                ["namespace"] = "default",
                ["uid"] = Guid.NewGuid().ToString(),
                ["finalizers"] = finalizer is null ? null : new JsonArray(finalizer),
            },
            ["spec"] = spec,
        });
    }

    private string Retained(string topic)
    {
        lock (_retained)
        {
            return _retained.GetValueOrDefault(topic, string.Empty);
        }
    }

    private List<string> IndexOf(string node)
    {
        var json = Retained(_topics.PodIndex(node));
        if (json.Length == 0)
        {
            return [];
        }

        var index = JsonSerializer.Deserialize(json, ProtocolJson.Default.PodIndex)!;
        return [.. index.Items.Select(i => i.Namespace + "/" + i.Name)];
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for " + what);
            await Task.Delay(20);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
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

        await _bridge.DisposeAsync();
        foreach (var n in _nodes)
        {
            n.Dispose();
        }

        await _broker.DisposeAsync();
        await _store.DisposeAsync();
        _stop.Dispose();
        Directory.Delete(_dataDir, recursive: true);
    }

    /// <summary>The store, counting full lists.</summary>
    private sealed class CountingStore(IObjectStore inner) : IObjectStore
    {
        private int _lists;

        public int Lists => Volatile.Read(ref _lists);

        public long CurrentResourceVersion => inner.CurrentResourceVersion;

        public Task<JsonObject?> GetAsync(ObjectKey key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

        public Task<StoreList> ListAsync(string resource, string? ns, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _lists);
            return inner.ListAsync(resource, ns, cancellationToken);
        }

        public Task<JsonObject> CreateAsync(ObjectKey key, JsonObject obj, CancellationToken cancellationToken = default) => inner.CreateAsync(key, obj, cancellationToken);

        public Task<JsonObject> UpdateAsync(ObjectKey key, JsonObject obj, long? expectedResourceVersion = null, CancellationToken cancellationToken = default) =>
            inner.UpdateAsync(key, obj, expectedResourceVersion, cancellationToken);

        public Task<JsonObject> DeleteAsync(ObjectKey key, long? expectedResourceVersion = null, CancellationToken cancellationToken = default) =>
            inner.DeleteAsync(key, expectedResourceVersion, cancellationToken);

        public async IAsyncEnumerable<WatchEvent> WatchAsync(string resource, string? ns, long sinceResourceVersion, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var e in inner.WatchAsync(resource, ns, sinceResourceVersion, cancellationToken))
            {
                yield return e;
            }
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
