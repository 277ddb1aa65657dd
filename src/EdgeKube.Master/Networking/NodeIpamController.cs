using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Networking;

/// <summary>
/// Gives every node a pod CIDR from <c>--cluster-cidr</c> (kube-controller-manager's node IPAM with
/// the range allocator): writes it into <c>spec.podCIDR</c> and <c>spec.podCIDRs</c>, where the bridge
/// picks it up for the node. The node objects are the record: each sweep rebuilds the allocator from
/// them, so a restarted master never allocates a CIDR twice and a deleted node's CIDR is free again.
/// </summary>
public sealed partial class NodeIpamController(IObjectStore store, string clusterCidr, int nodeMaskSize, EventRecorder events, ILogger<NodeIpamController> logger)
{
    private readonly SemaphoreSlim _kick = new(0, int.MaxValue);
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);

    // Each node's pod CIDR (null: none yet) as of its resourceVersion, from the last sweep.
    private Dictionary<string, (long Rv, string? Cidr)> _cidrs = new(StringComparer.Ordinal);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var watcher = KickOnNodeChangesAsync(cancellationToken);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(cancellationToken).ConfigureAwait(false);
                await _kick.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);

                // One sweep covers every kick so far: 1,000 nodes registering queued 1,000 sweeps over all nodes.
                while (_kick.CurrentCount > 0)
                {
                    await _kick.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        await watcher.ConfigureAwait(false);
    }

    private async Task KickOnNodeChangesAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var e in store.WatchAsync("nodes", null, store.CurrentResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    if (e.Type != WatchEventType.Modified || e.Object["spec"]?["podCIDR"] is null)
                    {
                        _kick.Release();
                    }
                }
            }
            catch (StoreException)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One pass: every node without a pod CIDR gets the lowest free one.</summary>
    /// <remarks>
    /// Each node's pod CIDR is kept by resourceVersion between sweeps; only nodes changed since are read from
    /// the store. A sweep runs every few seconds and on node changes, and parsing every node for it was a
    /// large part of the master's allocations at 5,000 nodes.
    /// </remarks>
    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        var allocator = new PodCidrAllocator(clusterCidr, nodeMaskSize);
        var seen = new Dictionary<string, (long Rv, string? Cidr)>(StringComparer.Ordinal);
        var nodes = new List<JsonObject>();
        foreach (var (key, rv) in await store.ListVersionsAsync("nodes", cancellationToken).ConfigureAwait(false))
        {
            JsonObject? read = null;
            if (!_cidrs.TryGetValue(key.Name, out var known) || known.Rv != rv)
            {
                read = await store.GetAsync(key, cancellationToken).ConfigureAwait(false);
                if (read is null)
                {
                    continue;
                }

                known = (read.ResourceVersion(), read["spec"]?["podCIDR"]?.GetValue<string>() is { Length: > 0 } c ? c : null);
            }

            seen[key.Name] = known;
            if (known.Cidr is { } cidr)
            {
                if (!allocator.Occupy(cidr) && _warned.Add(key.Name + " " + cidr))
                {
                    LogOutside(key.Name, cidr, allocator.ClusterCidr);
                }
            }
            else if ((read ?? await store.GetAsync(key, cancellationToken).ConfigureAwait(false)) is { } waiting)
            {
                // Without a CIDR: read to allocate (an unchanged one only after an allocation failed).
                nodes.Add(waiting);
            }
        }

        _cidrs = seen;
        foreach (var node in nodes.OrderBy(n => n.Name(), StringComparer.Ordinal))
        {
            var cidr = allocator.Allocate();
            if (cidr is null)
            {
                if (_warned.Add(node.Name() + " full"))
                {
                    LogFull(node.Name(), allocator.ClusterCidr);
                    await events.RecordAsync(node, "Warning", "CIDRNotAvailable", $"Node {node.Name()} status is now: CIDRNotAvailable", "cidrAllocator", cancellationToken).ConfigureAwait(false);
                }

                continue;
            }

            var spec = node.Obj("spec");
            spec["podCIDR"] = cidr;
            spec["podCIDRs"] = new JsonArray(cidr);
            try
            {
                await store.UpdateAsync(new ObjectKey("nodes", string.Empty, node.Name()), node, node.ResourceVersion(), cancellationToken).ConfigureAwait(false);
                LogAllocated(node.Name(), cidr);
            }
            catch (StoreException)
            {
                // Changed or deleted meanwhile: the next sweep looks again (the CIDR is only taken once it is stored).
                _kick.Release();
            }
        }
    }

    [LoggerMessage(EventId = 5300, Level = LogLevel.Information, Message = "Node {Node}: pod CIDR {Cidr}")]
    private partial void LogAllocated(string node, string cidr);

    [LoggerMessage(EventId = 5301, Level = LogLevel.Error, Message = "Node {Node}: no pod CIDR left in --cluster-cidr {ClusterCidr}")]
    private partial void LogFull(string node, string clusterCidr);

    [LoggerMessage(EventId = 5302, Level = LogLevel.Warning, Message = "Node {Node} holds pod CIDR {Cidr}, which is not a node subnet of --cluster-cidr {ClusterCidr}; left as it is")]
    private partial void LogOutside(string node, string cidr, string clusterCidr);
}
