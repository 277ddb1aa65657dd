using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Scheduling;
using EdgeKube.Master.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>
/// kube-controller-manager's taint-based eviction: a pod on a node with a <c>NoExecute</c> taint it does
/// not tolerate is deleted at once; one that tolerates it for <c>tolerationSeconds</c> is deleted when
/// that time has passed since the taint was added (the smallest of its matching tolerations counts);
/// one that tolerates it without a limit stays. Deleting lets its controller replace it elsewhere; the
/// node stops it when it returns. A node annotated <c>edgekube.io/autonomy=true</c> (a board expected
/// to go offline) never has its pods evicted.
/// </summary>
/// <remarks>
/// The pods of the tainted nodes come from the shared <see cref="PodNodeIndex"/>, never from a list of every
/// pod: the sweep runs every second, and while any node is tainted that list read and parsed every pod in the
/// cluster. The index holds the tolerations, so the pods whose time has not come cost no store read; the others
/// are read from the store and decided on again before they are deleted, since the index may lag.
/// </remarks>
public sealed partial class TaintEvictionController(
    IObjectStore store,
    PodNodeIndex pods,
    Func<JsonObject, CancellationToken, Task> delete,
    EventRecorder events,
    TimeProvider time,
    ILogger<TaintEvictionController> logger)
{
    public const string AutonomyAnnotation = "edgekube.io/autonomy";

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(TimeSpan.FromSeconds(1), time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // Only nodes whose JSON says NoExecute somewhere are parsed: this runs every second, over every node.
    private static readonly StoredJsonFilter MayHaveNoExecute = StoredJson.Mentions("NoExecute");

    /// <summary>One pass over the pods on NoExecute-tainted nodes; evicts those whose time has come.</summary>
    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        foreach (var node in (await store.ListAsync("nodes", null, MayHaveNoExecute, cancellationToken).ConfigureAwait(false)).Items)
        {
            var taints = NoExecuteTaints(node);
            if (taints.Count == 0 || node.Metadata()["annotations"]?[AutonomyAnnotation]?.GetValue<string>() == "true")
            {
                continue;
            }

            var nodeName = node.Name();
            foreach (var seen in pods.PodsOn(nodeName))
            {
                if (seen.Terminating || EvictionTime(taints, seen.Tolerations, now) is not { } due || due > now)
                {
                    continue;
                }

                try
                {
                    if (await store.GetAsync(seen.Key, cancellationToken).ConfigureAwait(false) is not { } pod || PodNodeIndex.NodeNameOf(pod) != nodeName
                        || pod.Metadata()["deletionTimestamp"] is not null || EvictionTime(taints, Tolerations(pod), now) is not { } at || at > now)
                    {
                        // Gone, deleted, moved or tolerating since the index saw it.
                        continue;
                    }

                    await delete(pod, cancellationToken).ConfigureAwait(false);
                    LogEvicted(pod.Namespace(), pod.Name(), nodeName);
                    await events.RecordAsync(pod, "Normal", "TaintManagerEviction", $"Marking for deletion Pod {pod.Namespace()}/{pod.Name()}", "taint-eviction-controller", cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is ApiError or StoreException)
                {
                    // Deleted or changed meanwhile: the next pass looks again.
                }
            }
        }
    }

    /// <summary>
    /// When a pod with <paramref name="tolerations"/> must leave a node with these NoExecute taints: now
    /// (<paramref name="now"/>) if one is not tolerated, null if all are tolerated without a limit, else
    /// the earliest of (taint added + smallest tolerationSeconds of the tolerations that match it).
    /// </summary>
    public static DateTimeOffset? EvictionTime(IReadOnlyList<V1Taint> taints, IReadOnlyList<V1Toleration> tolerations, DateTimeOffset now)
    {
        DateTimeOffset? earliest = null;
        foreach (var taint in taints)
        {
            var matching = tolerations.Where(t => Scheduling.Tolerations.Tolerates(t, taint.Key, taint.Value, taint.Effect)).ToList();
            if (matching.Count == 0)
            {
                return now;
            }

            if (matching.Any(t => t.TolerationSeconds is null))
            {
                continue;
            }

            // Negative or zero tolerationSeconds mean "evict at once", as in Kubernetes.
            var seconds = Math.Max(0, matching.Min(t => t.TolerationSeconds!.Value));
            var added = taint.TimeAdded is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : now;
            var when = added.AddSeconds(seconds);
            if (earliest is null || when < earliest)
            {
                earliest = when;
            }
        }

        return earliest;
    }

    private static List<V1Taint> NoExecuteTaints(JsonObject node) =>
        node["spec"]?["taints"] is JsonArray taints
            ? [.. taints.OfType<JsonObject>().Where(t => t.Str("effect") == Scheduling.Tolerations.NoExecute).Select(t => KubernetesJson.Deserialize<V1Taint>(t.ToJsonString()))]
            : [];

    private static List<V1Toleration> Tolerations(JsonObject pod) =>
        pod["spec"]?["tolerations"] is JsonArray tolerations
            ? [.. tolerations.OfType<JsonObject>().Select(t => KubernetesJson.Deserialize<V1Toleration>(t.ToJsonString()))]
            : [];

    [LoggerMessage(EventId = 5200, Level = LogLevel.Information, Message = "Evicting pod {Namespace}/{Name} from node {Node}: a NoExecute taint it does not tolerate (any longer)")]
    private partial void LogEvicted(string @namespace, string name, string node);
}
