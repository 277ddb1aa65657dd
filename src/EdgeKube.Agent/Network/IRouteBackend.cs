namespace EdgeKube.Agent.Network;

/// <summary>A host route the agent keeps: pod CIDR <paramref name="Destination"/> via node address <paramref name="Gateway"/>.</summary>
public sealed record PodRoute(string Destination, string Gateway);

/// <summary>
/// The host's routing table as the agent sees it: only the routes the agent made (marked with its own
/// route protocol), so it never touches anyone else's. Rules: <see cref="ReplaceAsync"/> creates or
/// overwrites; <see cref="DeleteAsync"/> of a route that is already gone is not an error. Failures
/// throw <see cref="NetworkException"/> with the tool's message.
/// </summary>
public interface IRouteBackend
{
    Task<IReadOnlyList<PodRoute>> ListAsync(CancellationToken cancellationToken);

    Task ReplaceAsync(PodRoute route, CancellationToken cancellationToken);

    Task DeleteAsync(PodRoute route, CancellationToken cancellationToken);

    /// <summary>Lets pods reach beyond the cluster: forwarding on, and pod traffic to outside <paramref name="clusterCidr"/> masqueraded (never pod to pod).</summary>
    Task EnsureEgressAsync(string podCidr, string clusterCidr, CancellationToken cancellationToken);
}

/// <summary>A route or firewall command failed.</summary>
public sealed class NetworkException(string message) : Exception(message);
