using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace EdgeKube.Broker;

/// <summary>
/// The master's embedded MQTT broker (MQTTnet's server): every client authenticates against the
/// <see cref="CredentialStore"/>, node clients must use their own client id (so no node can take over
/// another's session), and every publish and subscription is checked against <see cref="NodeAcl"/>.
/// Listens on loopback unless given another address; with a certificate it also serves MQTT over TLS
/// (mqtts) on a second endpoint.
/// </summary>
public sealed partial class EmbeddedBroker : IAsyncDisposable
{
    private readonly MqttServer _server;
    private readonly CredentialStore _credentials;
    private readonly NodeAcl _acl;
    private readonly NodeRetainedStore _retained;
    private readonly NodeSubscriptions<MqttSessionStatus> _subscriptions;
    private readonly ILogger _logger;
    private long _dropped;

    public EmbeddedBroker(IPEndPoint endpoint, CredentialStore credentials, NodeAcl acl, ILogger logger, IPEndPoint? tlsEndpoint = null, X509Certificate2? tlsCertificate = null)
    {
        _credentials = credentials;
        _acl = acl;
        _retained = new NodeRetainedStore(acl.Prefix);
        _subscriptions = new NodeSubscriptions<MqttSessionStatus>(_retained);
        _logger = logger;
        var options = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(endpoint.Port)
            // Thousands of nodes connect at once after a master or network restart: MQTTnet's default
            // accept backlog (100) overflowed and left nodes in SYN retries for minutes (bench scale).
            .WithConnectionBacklog(ConnectionBacklog)
            // The master's one session receives every node's messages; MQTTnet's default queue of 250
            // per client dropped node registrations when 1,000 nodes connected at once (bench scale).
            .WithMaxPendingMessagesPerClient(MaxPendingMessagesPerClient);
        options = endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? options.WithDefaultEndpointBoundIPV6Address(endpoint.Address).WithDefaultEndpointBoundIPAddress(IPAddress.None)
            : options.WithDefaultEndpointBoundIPAddress(endpoint.Address).WithDefaultEndpointBoundIPV6Address(IPAddress.None);
        if (tlsEndpoint is not null)
        {
            var certificate = tlsCertificate ?? throw new ArgumentException("a TLS endpoint needs a certificate", nameof(tlsCertificate));
            options = options.WithEncryptedEndpoint().WithEncryptedEndpointPort(tlsEndpoint.Port).WithEncryptionCertificate(certificate)
                .WithEncryptionSslProtocol(System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13);
            options = tlsEndpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? options.WithEncryptedEndpointBoundIPV6Address(tlsEndpoint.Address).WithEncryptedEndpointBoundIPAddress(IPAddress.None)
                : options.WithEncryptedEndpointBoundIPAddress(tlsEndpoint.Address).WithEncryptedEndpointBoundIPV6Address(IPAddress.None);
        }

        var built = options.Build();
        // MQTTnet checks keepalive deadlines every 500 ms by default: up to half a second more before a
        // silent node's will goes out. A pass over the sessions is cheap, even with thousands.
        built.KeepAliveOptions.MonitorInterval = KeepAliveMonitorInterval;
        _server = new MqttServerFactory().CreateMqttServer(built);
        _server.ValidatingConnectionAsync += ValidateAsync;
        _server.InterceptingPublishAsync += InterceptPublishAsync;
        _server.InterceptingSubscriptionAsync += InterceptSubscriptionAsync;
        _server.ClientSubscribedTopicAsync += SubscribedAsync;
        _server.ClientUnsubscribedTopicAsync += e =>
        {
            _subscriptions.Remove(e.ClientId, e.SessionItems, e.TopicFilter);
            return Task.CompletedTask;
        };
        _server.SessionDeletedAsync += e =>
        {
            _subscriptions.Forget(e.Id, identity: e.SessionItems);
            return Task.CompletedTask;
        };
        _server.ClientConnectedAsync += e =>
        {
            // A clean start replaced the session: what the old one subscribed is gone with it.
            _subscriptions.Forget(e.ClientId, unless: e.SessionItems);
            return Task.CompletedTask;
        };
        _server.ApplicationMessageEnqueuedOrDroppedAsync += e =>
        {
            if (e.IsDropped)
            {
                Interlocked.Increment(ref _dropped);
            }

            return Task.CompletedTask;
        };
        Endpoint = endpoint;
    }

    /// <summary>How often the broker looks for sessions whose keepalive ran out (1.5 × keepalive without a packet).</summary>
    public static readonly TimeSpan KeepAliveMonitorInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Listen backlog of the MQTT endpoint (the kernel caps it at net.core.somaxconn).</summary>
    public const int ConnectionBacklog = 4096;

    /// <summary>Messages queued for one client before the broker drops any: enough for every node of a large cluster to report at once.</summary>
    public const int MaxPendingMessagesPerClient = 1_000_000;

    public IPEndPoint Endpoint { get; }

    public MqttServer Server => _server;

    public long RefusedConnections { get; private set; }

    /// <summary>Messages the broker dropped because a client's queue was full.</summary>
    public long DroppedMessages => Interlocked.Read(ref _dropped);

    public long RefusedPublishes { get; private set; }

    public long RefusedSubscriptions { get; private set; }

    public Task StartAsync() => _server.StartAsync();

    /// <summary>Closes every connection of <paramref name="user"/> (after its credentials were revoked).</summary>
    public async Task DisconnectUserAsync(string user)
    {
        foreach (var client in await _server.GetClientsAsync().ConfigureAwait(false))
        {
            if (client.Session.Items.Contains("user") && (string?)client.Session.Items["user"] == user)
            {
                await client.DisconnectAsync().ConfigureAwait(false);
            }
        }
    }

    private Task ValidateAsync(ValidatingConnectionEventArgs e)
    {
        var user = e.UserName;
        if (!_credentials.Verify(user, e.Password))
        {
            RefusedConnections++;
            e.ReasonCode = string.IsNullOrEmpty(user) ? MqttConnectReasonCode.NotAuthorized : MqttConnectReasonCode.BadUserNameOrPassword;
            LogRefused(e.ClientId, user ?? "(none)", "bad credentials");
            return Task.CompletedTask;
        }

        if (user != NodeAcl.MasterUser && e.ClientId != "edgekube-agent-" + user)
        {
            RefusedConnections++;
            e.ReasonCode = MqttConnectReasonCode.ClientIdentifierNotValid;
            LogRefused(e.ClientId, user!, "a node must connect with client id edgekube-agent-<node>");
            return Task.CompletedTask;
        }

        e.SessionItems["user"] = user;
        return Task.CompletedTask;
    }

    private Task InterceptPublishAsync(InterceptingPublishEventArgs e)
    {
        // Messages the broker itself injects have no client, and no ACL.
        if (!string.IsNullOrEmpty(e.ClientId))
        {
            var user = UserOf(e.SessionItems, e.UserName);
            if (!_acl.CanPublish(user, e.ApplicationMessage.Topic))
            {
                RefusedPublishes++;
                e.ProcessPublish = false;
                e.Response.ReasonCode = MqttPubAckReasonCode.NotAuthorized;
                LogDenied(user, "publish", e.ApplicationMessage.Topic);
                return Task.CompletedTask;
            }
        }

        // A node topic's publish is kept (when retained) and delivered here, through the per-node index of
        // its subscribers, not by MQTTnet, which would ask every session (NodeSubscriptions).
        var message = e.ApplicationMessage;
        if (_retained.NodeOf(message.Topic) is { } node)
        {
            e.ProcessPublish = false;
            int delivered;
            lock (_retained.LockOf(node))
            {
                if (message.Retain)
                {
                    _retained.Keep(message);
                }

                delivered = Deliver(node, message, e.ClientId);
            }

            if (delivered == 0 && e.Response.ReasonCode == MqttPubAckReasonCode.Success)
            {
                // As MQTTnet (and MQTT 5) answer a publish nobody receives.
                e.Response.ReasonCode = MqttPubAckReasonCode.NoMatchingSubscribers;
            }
        }

        return Task.CompletedTask;
    }

    private int Deliver(string node, MqttApplicationMessage message, string? senderId)
    {
        var deliveries = _subscriptions.Match(node, message, senderId);
        foreach (var (clientId, identity, session, copy) in deliveries)
        {
            try
            {
                if (!session.TryEnqueueApplicationMessage(copy, out _))
                {
                    // The client's queue is full (MaxPendingMessagesPerClient).
                    Interlocked.Increment(ref _dropped);
                }
            }
            catch (ObjectDisposedException)
            {
                // The session ended meanwhile.
                _subscriptions.Forget(clientId, identity);
            }
        }

        return deliveries.Count;
    }

    /// <summary>
    /// After a subscription is in place: records it for node-topic delivery, then sends the node topics'
    /// retained messages it matches, as MQTT's retain handling says: always (0), only for a new
    /// subscription (1), never (2).
    /// </summary>
    private async Task SubscribedAsync(ClientSubscribedTopicEventArgs e)
    {
        var filter = e.TopicFilter;
        if (_retained.ScopeOf(filter.Topic, out _) == FilterScope.None)
        {
            return;
        }

        MqttSessionStatus session;
        try
        {
            session = await _server.GetSessionAsync(e.ClientId).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Gone again already.
            return;
        }

        if (!ReferenceEquals(session.Items, e.SessionItems))
        {
            // Replaced by a newer session (a clean start) meanwhile, which subscribes for itself.
            return;
        }

        _subscriptions.Add(e.ClientId, e.SessionItems, session, filter, out var isNew);
        if (filter.RetainHandling == MqttRetainHandling.DoNotSendOnSubscribe
            || (filter.RetainHandling == MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly && !isNew))
        {
            return;
        }

        _retained.Replay(filter.Topic, filter.QualityOfServiceLevel, message => session.TryEnqueueApplicationMessage(message, out _));
    }

    /// <summary>The account a client authenticated as (recorded at connect), for the ACL.</summary>
    private static string UserOf(System.Collections.IDictionary sessionItems, string? userName) =>
        sessionItems["user"] as string ?? userName ?? string.Empty;

    private Task InterceptSubscriptionAsync(InterceptingSubscriptionEventArgs e)
    {
        var user = UserOf(e.SessionItems, e.UserName);
        if (!_acl.CanSubscribe(user, e.TopicFilter.Topic))
        {
            RefusedSubscriptions++;
            e.ProcessSubscription = false;
            e.Response.ReasonCode = MqttSubscribeReasonCode.NotAuthorized;
            LogDenied(user, "subscribe", e.TopicFilter.Topic);
        }

        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync().ConfigureAwait(false);
        _server.Dispose();
    }

    [LoggerMessage(EventId = 2000, Level = LogLevel.Warning, Message = "MQTT connection refused for client {ClientId} user {User}: {Reason}")]
    private partial void LogRefused(string clientId, string user, string reason);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "MQTT user {User} denied {Action} on {Topic}")]
    private partial void LogDenied(string user, string action, string topic);
}
