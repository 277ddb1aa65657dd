using EdgeKube.Master.Api;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>Finishes <c>kubectl delete namespace</c>: deletes everything in a Terminating namespace (pods gracefully), then the namespace itself.</summary>
public sealed partial class NamespaceController(IObjectStore store, ApiServer api, ILogger<NamespaceController> logger)
{
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        foreach (var ns in (await store.ListAsync("namespaces", null, cancellationToken).ConfigureAwait(false)).Items)
        {
            if (ns["status"]?["phase"]?.GetValue<string>() != "Terminating")
            {
                continue;
            }

            var left = 0;
            foreach (var resource in ApiResources.All.Where(r => r.Namespaced && r.Stored))
            {
                foreach (var obj in (await store.ListAsync(resource.StoreName, ns.Name(), cancellationToken).ConfigureAwait(false)).Items)
                {
                    left++;
                    try
                    {
                        await api.DeleteObjectAsync(resource, obj, null, cancellationToken).ConfigureAwait(false);
                    }
                    catch (ApiError)
                    {
                        // Gone meanwhile, or still terminating: the next sweep looks again.
                    }
                }
            }

            if (left == 0)
            {
                try
                {
                    await store.DeleteAsync(new ObjectKey("namespaces", string.Empty, ns.Name()), null, cancellationToken).ConfigureAwait(false);
                    LogDeleted(ns.Name());
                }
                catch (StoreException)
                {
                }
            }
        }
    }

    [LoggerMessage(EventId = 5200, Level = LogLevel.Information, Message = "Namespace {Namespace} deleted")]
    private partial void LogDeleted(string @namespace);
}
