using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Controllers;

/// <summary>Writes core/v1 Events about objects, as kubectl describe shows them; a repeat of the same event bumps its count.</summary>
/// <remarks>
/// Repeats are found, as client-go's EventCorrelator finds them, in memory: the last
/// <see cref="Remembered"/> distinct events this recorder wrote, by object uid, reason and message. Looking
/// them up by listing the namespace's events cost O(events) per event, O(n²) for a scheduler binding
/// 10,000 pods. A repeat of an event no longer remembered (older, or from before a restart) starts a new
/// event with count 1, as in Kubernetes.
/// </remarks>
public sealed class EventRecorder(IObjectStore store, TimeProvider time)
{
    /// <summary>client-go's maxLruCacheEntries.</summary>
    public const int Remembered = 4096;

    private readonly Lock _lock = new();
    private readonly Dictionary<(string Namespace, string Uid, string Reason, string Message), string> _recent = [];
    private readonly Queue<(string Namespace, string Uid, string Reason, string Message)> _order = new();

    public async Task RecordAsync(JsonObject involved, string type, string reason, string message, string component, CancellationToken cancellationToken)
    {
        var ns = involved.Namespace() is { Length: > 0 } n ? n : "default";
        var now = ObjectMeta.Time(time.GetUtcNow());
        var id = (ns, involved.Uid(), reason, message);
        string? known;
        lock (_lock)
        {
            known = _recent.GetValueOrDefault(id);
        }

        var existing = known is null ? null : await store.GetAsync(new ObjectKey("events", ns, known), cancellationToken).ConfigureAwait(false);
        if (existing is not null)
        {
            existing["count"] = (existing["count"]?.GetValue<int>() ?? 1) + 1;
            existing["lastTimestamp"] = now;
            try
            {
                await store.UpdateAsync(new ObjectKey("events", ns, existing.Name()), existing, existing.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            }
            catch (StoreException)
            {
                // Losing a repeat count to a race is acceptable; the event is there.
            }

            return;
        }

        var name = $"{involved.Name()}.{Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant()}";
        var evt = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Event",
            ["metadata"] = new JsonObject
            {
                ["name"] = name,
                ["namespace"] = ns,
                ["uid"] = Guid.NewGuid().ToString(),
                ["creationTimestamp"] = now,
            },
            ["involvedObject"] = new JsonObject
            {
                ["apiVersion"] = involved.Str("apiVersion"),
                ["kind"] = involved.Str("kind"),
                ["name"] = involved.Name(),
                ["namespace"] = involved.Namespace() is { Length: > 0 } ons ? ons : null,
                ["uid"] = involved.Uid(),
                ["resourceVersion"] = involved.Metadata().Str("resourceVersion"),
            },
            ["reason"] = reason,
            ["message"] = message,
            ["source"] = new JsonObject { ["component"] = component },
            ["firstTimestamp"] = now,
            ["lastTimestamp"] = now,
            ["count"] = 1,
            ["type"] = type,
            ["reportingComponent"] = component,
            ["reportingInstance"] = string.Empty,
        };
        try
        {
            await store.CreateAsync(new ObjectKey("events", ns, name), evt, cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException)
        {
            return;
        }

        Remember(id, name);
    }

    private void Remember((string Namespace, string Uid, string Reason, string Message) id, string name)
    {
        lock (_lock)
        {
            if (_recent.TryAdd(id, name))
            {
                _order.Enqueue(id);
                if (_order.Count > Remembered)
                {
                    _recent.Remove(_order.Dequeue());
                }
            }
            else
            {
                _recent[id] = name;
            }
        }
    }
}
