using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Agent.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Network;

/// <summary>
/// The node's part of the pod network (docs/networking.md): when the master's node spec brings this
/// node's pod CIDR, writes the CNI config containerd uses for it (bridge + host-local + portmap, no
/// masquerade between pods); and keeps a host route to every other node's pod CIDR via that node's
/// address in step with the route table the master publishes on <c>cluster/routes</c>, removing the
/// routes of nodes that left it. Only routes marked as the agent's are touched.
/// </summary>
public sealed partial class PodNetwork(
    string nodeName,
    Topics topics,
    string cniConfDir,
    string ipamDataDir,
    IRouteBackend routes,
    TimeProvider time,
    ILogger<PodNetwork> logger)
{
    public const string ConfigFileName = "10-edgekube.conflist";
    public const string NetworkName = "edgekube";

    private readonly SemaphoreSlim _lock = new(1, 1);
    private RouteTable? _table;
    private string? _lastError;

    /// <summary>The CNI bridge on the node (kubelet's kubenet and flannel call theirs cni0 too).</summary>
    public string BridgeName { get; init; } = "cni0";

    /// <summary>How often the routes are checked against the table even without a new one (someone may have removed one).</summary>
    public TimeSpan ResyncPeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>This node's pod CIDR, once the master has sent it.</summary>
    public string? PodCidr { get; private set; }

    public string ConfigPath => Path.Combine(cniConfDir, ConfigFileName);

    public async Task HandleAsync(MqttMessage message)
    {
        if (message.Topic == topics.NodeSpec(nodeName))
        {
            if (message.Payload.Length == 0)
            {
                return;
            }

            string? cidr;
            using (var doc = JsonDocument.Parse(message.Payload))
            {
                cidr = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("podCIDR", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            }

            if (cidr is null || cidr == PodCidr)
            {
                return;
            }

            if (!IsIPv4Cidr(cidr))
            {
                LogBadCidr(cidr);
                return;
            }

            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                WriteCniConfig(cidr);
                PodCidr = cidr;
                LogPodCidr(cidr, ConfigPath);
                await SyncAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
        else if (message.Topic == topics.Routes)
        {
            var table = message.Payload.Length == 0 ? null : JsonSerializer.Deserialize(message.Payload.Span, ProtocolJson.Default.RouteTable);
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                _table = table ?? new RouteTable(string.Empty, []);
                await SyncAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    /// <summary>Checks the routes every <see cref="ResyncPeriod"/>.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(ResyncPeriod, time, cancellationToken).ConfigureAwait(false);
                await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await SyncAsync(cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    _lock.Release();
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The host routes this node should have for <paramref name="table"/>: every other node's CIDR via its address; bad entries left out.</summary>
    public static IReadOnlyList<PodRoute> DesiredRoutes(RouteTable table, string self) =>
        [.. table.Routes
            .Where(r => r.Node != self && IsIPv4Cidr(r.PodCidr) && IPAddress.TryParse(r.NodeIp, out var ip) && ip.AddressFamily == AddressFamily.InterNetwork)
            .GroupBy(r => r.PodCidr, StringComparer.Ordinal)
            .Select(g => g.First())
            .Select(r => new PodRoute(r.PodCidr, r.NodeIp))];

    /// <summary>What to change to get from <paramref name="current"/> to <paramref name="desired"/>: routes to replace, routes to delete.</summary>
    public static (IReadOnlyList<PodRoute> Replace, IReadOnlyList<PodRoute> Delete) Plan(IReadOnlyList<PodRoute> desired, IReadOnlyList<PodRoute> current)
    {
        var have = current.ToHashSet();
        var wantedDestinations = desired.Select(r => r.Destination).ToHashSet(StringComparer.Ordinal);
        return ([.. desired.Where(r => !have.Contains(r))], [.. current.Where(r => !wantedDestinations.Contains(r.Destination))]);
    }

    private async Task SyncAsync(CancellationToken cancellationToken)
    {
        if (_table is null)
        {
            return;
        }

        var errors = new List<string>();
        try
        {
            if (PodCidr is not null && PodNetworkIsValid(_table.ClusterCidr))
            {
                await routes.EnsureEgressAsync(PodCidr, _table.ClusterCidr, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is NetworkException or IOException or UnauthorizedAccessException)
        {
            errors.Add("egress: " + e.Message);
        }

        IReadOnlyList<PodRoute> current;
        try
        {
            current = await routes.ListAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NetworkException or JsonException)
        {
            Report([e.Message]);
            return;
        }

        var (replace, delete) = Plan(DesiredRoutes(_table, nodeName), current);
        foreach (var r in delete)
        {
            try
            {
                await routes.DeleteAsync(r, cancellationToken).ConfigureAwait(false);
                LogRouteDeleted(r.Destination, r.Gateway);
            }
            catch (NetworkException e)
            {
                errors.Add(e.Message);
            }
        }

        foreach (var r in replace)
        {
            try
            {
                await routes.ReplaceAsync(r, cancellationToken).ConfigureAwait(false);
                LogRouteSet(r.Destination, r.Gateway);
            }
            catch (NetworkException e)
            {
                errors.Add(e.Message);
            }
        }

        Report(errors);
    }

    private void Report(List<string> errors)
    {
        var text = errors.Count == 0 ? null : string.Join("; ", errors);
        if (text is not null && text != _lastError)
        {
            LogNetworkError(text);
        }

        _lastError = text;
    }

    private static bool PodNetworkIsValid(string clusterCidr) => IsIPv4Cidr(clusterCidr);

    private void WriteCniConfig(string podCidr)
    {
        Directory.CreateDirectory(cniConfDir);
        var json = $$$"""
            {
              "cniVersion": "1.0.0",
              "name": "{{{NetworkName}}}",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "{{{BridgeName}}}",
                  "isGateway": true,
                  "ipMasq": false,
                  "hairpinMode": true,
                  "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "{{{podCidr}}}"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": "{{{JsonEncodedText.Encode(ipamDataDir)}}}"
                  }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
              ]
            }

            """;
        AtomicFile.WriteAllText(ConfigPath, json);
    }

    /// <summary>An IPv4 network in CIDR form with its host bits clear.</summary>
    public static bool IsIPv4Cidr(string? text)
    {
        var slash = text?.IndexOf('/') ?? -1;
        if (slash <= 0 || !IPAddress.TryParse(text![..slash], out var ip) || ip.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var bits) || bits is < 1 or > 32)
        {
            return false;
        }

        var b = ip.GetAddressBytes();
        var value = ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
        return (value & ~(uint.MaxValue << (32 - bits))) == 0;
    }

    [LoggerMessage(EventId = 1400, Level = LogLevel.Information, Message = "Pod CIDR {Cidr}: CNI config written to {Path}")]
    private partial void LogPodCidr(string cidr, string path);

    [LoggerMessage(EventId = 1401, Level = LogLevel.Error, Message = "The master sent pod CIDR \"{Cidr}\", which is not an IPv4 CIDR; the CNI config is left as it is")]
    private partial void LogBadCidr(string cidr);

    [LoggerMessage(EventId = 1402, Level = LogLevel.Information, Message = "Route {Destination} via {Gateway}")]
    private partial void LogRouteSet(string destination, string gateway);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Information, Message = "Route {Destination} via {Gateway} removed: its node left the route table")]
    private partial void LogRouteDeleted(string destination, string gateway);

    [LoggerMessage(EventId = 1404, Level = LogLevel.Error, Message = "Pod network: {Error}")]
    private partial void LogNetworkError(string error);
}
