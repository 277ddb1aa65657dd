using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Controllers;

/// <summary>Writes core/v1 Events about objects, as kubectl describe shows them; a repeat of the same event bumps its count.</summary>
public sealed class EventRecorder(IObjectStore store, TimeProvider time)
{
    public async Task RecordAsync(JsonObject involved, string type, string reason, string message, string component, CancellationToken cancellationToken)
    {
        var ns = involved.Namespace() is { Length: > 0 } n ? n : "default";
        var now = ObjectMeta.Time(time.GetUtcNow());
        var existing = (await store.ListAsync("events", ns, cancellationToken).ConfigureAwait(false)).Items.FirstOrDefault(e =>
            e["involvedObject"]?["uid"]?.GetValue<string>() == involved.Uid() && e.Str("reason") == reason && e.Str("message") == message);
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
        }
    }
}
