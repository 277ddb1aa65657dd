using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Controllers.Workloads;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Controllers.Workloads;

/// <summary>
/// The workload controllers on an in-memory store with fake time, and a stand-in for the nodes: tests make
/// pods ready, succeed or fail, and finish graceful deletions, as kubelets would.
/// </summary>
internal sealed class WorkloadHarness : IAsyncDisposable
{
    public WorkloadHarness()
    {
        Writer = new ObjectWriter(Store, Time);
        var events = new EventRecorder(Store, Time);
        ReplicaSets = new ReplicaSetController(Writer, events, NullLogger<ReplicaSetController>.Instance);
        Deployments = new DeploymentController(Writer, events, NullLogger<DeploymentController>.Instance);
        DaemonSets = new DaemonSetController(Writer, events, NullLogger<DaemonSetController>.Instance);
        Jobs = new JobController(Writer, events, NullLogger<JobController>.Instance);
        Collector = new GarbageCollector(Writer, NullLogger<GarbageCollector>.Instance);
    }

    public InMemoryObjectStore Store { get; } = new();

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero));

    public ObjectWriter Writer { get; }

    public ReplicaSetController ReplicaSets { get; }

    public DeploymentController Deployments { get; }

    public DaemonSetController DaemonSets { get; }

    public JobController Jobs { get; }

    public GarbageCollector Collector { get; }

    /// <summary>The earliest wake-up the last <see cref="SyncAsync"/> asked for.</summary>
    public DateTimeOffset? Next { get; private set; }

    public static ApiResource Resource(string plural) => ApiResources.All.Single(r => r.Plural == plural);

    public async Task InitializeAsync()
    {
        foreach (var ns in new[] { "default", "other" })
        {
            await Writer.CreateObjectAsync(Resource("namespaces"), new JsonObject { ["metadata"] = new JsonObject { ["name"] = ns } }, default);
        }
    }

    /// <summary>Runs every controller until a whole round changes nothing (at most 20 rounds).</summary>
    public async Task SyncAsync()
    {
        for (var round = 0; round < 20; round++)
        {
            var before = await SignatureAsync();
            DateTimeOffset? next = null;
            foreach (var sync in new Func<CancellationToken, Task<DateTimeOffset?>>[] { Deployments.SyncAllAsync, ReplicaSets.SyncAllAsync, DaemonSets.SyncAllAsync, Jobs.SyncAllAsync, Collector.SyncAllAsync })
            {
                var at = await sync(default);
                if (at is { } t && (next is null || t < next))
                {
                    next = t;
                }
            }

            Next = next;
            if (await SignatureAsync() == before)
            {
                return;
            }
        }

        throw new InvalidOperationException("the controllers never settled");
    }

    /// <summary>Every object's resourceVersion but events' (a repeated event only bumps its count).</summary>
    private async Task<string> SignatureAsync()
    {
        var parts = new List<string>();
        foreach (var r in ApiResources.All.Where(r => r.Stored && r.Kind != "Event"))
        {
            parts.AddRange((await Store.ListAsync(r.StoreName, null)).Items.Select(o => o.Metadata().Str("resourceVersion") ?? string.Empty));
        }

        return string.Join(',', parts);
    }

    public async Task<JsonObject> CreateAsync(string plural, string yamlLikeJson, string ns = "default") =>
        await Writer.CreateAsync(Resource(plural), ns, JsonNode.Parse(yamlLikeJson)!.AsObject(), default);

    public async Task<JsonObject> GetAsync(string plural, string name, string ns = "default") =>
        await Store.GetAsync(new ObjectKey(Resource(plural).StoreName, ns, name)) ?? throw new InvalidOperationException($"{plural}/{name} not found");

    public async Task<IReadOnlyList<JsonObject>> ListAsync(string plural, string? ns = "default") =>
        (await Store.ListAsync(Resource(plural).StoreName, ns)).Items;

    /// <summary>Pods not being deleted and not finished.</summary>
    public async Task<List<JsonObject>> ActivePodsAsync(string? ns = "default") => (await ListAsync("pods", ns)).Where(Pods.IsActive).ToList();

    /// <summary>Changes an object as kubectl apply/edit would: through the API's update rules (defaults, validation, generation).</summary>
    public async Task UpdateSpecAsync(string plural, string name, Action<JsonObject> change, string ns = "default")
    {
        var current = await GetAsync(plural, name, ns);
        var updated = current.DeepClone().AsObject();
        change(updated);
        WorkloadRules.ApplyDefaults(updated);
        Assert.Empty(WorkloadRules.Validate(updated));
        if (!JsonNode.DeepEquals(current["spec"], updated["spec"]))
        {
            updated.Metadata()["generation"] = ControllerLoop.Long(current.Metadata()["generation"]) + 1;
        }

        await Store.UpdateAsync(new ObjectKey(Resource(plural).StoreName, ns, name), updated, current.ResourceVersion());
    }

    /// <summary>What a kubelet reports for a running pod whose containers are ready (the pod is bound to node-1 if it was not).</summary>
    public Task MarkReadyAsync(JsonObject pod) => SetStatusAsync(pod, "Running", ready: true);

    public Task SucceedAsync(JsonObject pod) => SetStatusAsync(pod, "Succeeded", ready: false);

    public Task FailAsync(JsonObject pod) => SetStatusAsync(pod, "Failed", ready: false);

    public async Task MarkAllReadyAsync(string? ns = "default")
    {
        foreach (var pod in await ActivePodsAsync(ns))
        {
            if (!Pods.IsReady(pod))
            {
                await MarkReadyAsync(pod);
            }
        }
    }

    /// <summary>Finishes the deletion of pods marked for it, as the bridge does when their node has stopped them: they go, or wait for their finalizers.</summary>
    public async Task FinishDeletionsAsync()
    {
        foreach (var pod in (await ListAsync("pods", null)).Where(p => Pods.IsTerminating(p) && !ObjectWriter.IsStopped(p)))
        {
            await ObjectWriter.FinishPodAsync(Store, Time, new ObjectKey("pods", pod.Namespace(), pod.Name()), pod, default);
        }
    }

    private async Task SetStatusAsync(JsonObject pod, string phase, bool ready)
    {
        var current = await GetAsync("pods", pod.Name(), pod.Namespace());
        var now = ObjectMeta.Time(Time.GetUtcNow());
        // Only a pod bound to a node runs.
        current.Obj("spec")["nodeName"] ??= "node-1";
        var status = current.Obj("status");
        status["phase"] = phase;
        status["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = ready ? "True" : "False", ["lastTransitionTime"] = now });
        if (phase is "Succeeded" or "Failed")
        {
            status["containerStatuses"] = new JsonArray(new JsonObject
            {
                ["name"] = "app",
                ["restartCount"] = 0,
                ["state"] = new JsonObject { ["terminated"] = new JsonObject { ["exitCode"] = phase == "Failed" ? 1 : 0, ["finishedAt"] = now } },
            });
        }

        await Store.UpdateAsync(new ObjectKey("pods", current.Namespace(), current.Name()), current, current.ResourceVersion());
    }

    public ValueTask DisposeAsync() => Store.DisposeAsync();

    public static string Deployment(string name, int replicas, string image = "busybox:1", string strategy = "") => """
        {"metadata": {"name": "NAME"},
         "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "NAME"}}, STRATEGY
                  "template": {"metadata": {"labels": {"app": "NAME"}}, "spec": {"containers": [{"name": "app", "image": "IMAGE"}]}}}}
        """.Replace("NAME", name, StringComparison.Ordinal).Replace("REPLICAS", replicas.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("STRATEGY", strategy, StringComparison.Ordinal).Replace("IMAGE", image, StringComparison.Ordinal);
}
