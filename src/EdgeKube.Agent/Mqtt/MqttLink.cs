using System.Buffers;
using System.Text;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace EdgeKube.Agent.Mqtt;

/// <summary>Where and how the agent reaches its broker (from the join config).</summary>
public sealed record BrokerOptions
{
    /// <summary><c>mqtt://host:1883</c> or <c>mqtts://host:8883</c>.</summary>
    public required Uri Url { get; init; }

    public required string Username { get; init; }

    public required string Password { get; init; }

    /// <summary>PEM of the CA that signed the broker's certificate (mqtts only); the system store when null.</summary>
    public string? CaPem { get; init; }

    public string TopicPrefix { get; init; } = Topics.DefaultPrefix;

    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>One received message, handed to the handlers while the broker waits for our acknowledgement.</summary>
public sealed record MqttMessage(string Topic, ReadOnlyMemory<byte> Payload, bool Retained, string? ResponseTopic = null, byte[]? CorrelationData = null)
{
    public string Text => Encoding.UTF8.GetString(Payload.Span);
}

/// <summary>
/// The agent's connection to the broker: MQTT 5 with credentials (and TLS for mqtts), a will that
/// marks the node offline, presence "online" once connected, reconnection with jittered exponential
/// backoff, and a store of the latest retained message per topic that is (re)published on every
/// connect, so status computed while disconnected reaches the master when the link returns.
/// Handlers run before the broker gets its acknowledgement: what they persist is persisted first.
/// </summary>
public sealed partial class MqttLink : IAsyncDisposable
{
    private readonly BrokerOptions _options;
    private readonly string _nodeName;
    private readonly TimeProvider _time;
    private readonly ILogger<MqttLink> _logger;
    private readonly IMqttClient _client;
    private readonly MqttClientFactory _factory = new();
    private readonly KeepAliveAdapterFactory _adapters;
    private CancellationTokenSource? _connection;
    private readonly Dictionary<string, byte[]> _retained = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private volatile string? _held;

    /// <summary>Whether the node runs the pod network and so takes the cluster's route table (<c>cluster/#</c>).</summary>
    public bool PodNetwork { get; init; } = true;

    public MqttLink(BrokerOptions options, string nodeName, TimeProvider time, ILogger<MqttLink> logger)
    {
        _options = options;
        _nodeName = nodeName;
        _time = time;
        _logger = logger;
        Topics = new Topics(options.TopicPrefix);
        _adapters = new KeepAliveAdapterFactory((ushort)Math.Clamp(options.KeepAlive.TotalSeconds, 1, ushort.MaxValue), time);
        _client = _factory.CreateMqttClient(_adapters);
        _client.ApplicationMessageReceivedAsync += OnMessageAsync;
        _client.DisconnectedAsync += e =>
        {
            if (e.ClientWasConnected)
            {
                LogDisconnected(e.Reason.ToString(), e.Exception?.Message ?? string.Empty);
            }

            Interlocked.Exchange(ref _connection, null)?.Cancel();

            _wake.Release();
            return Task.CompletedTask;
        };
    }

    public Topics Topics { get; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>Why the link is held down (<see cref="HoldAsync"/>); null while it may connect.</summary>
    public string? HeldBecause => _held;

    public long Connects { get; private set; }

    /// <summary>Keepalive pings sent (after a keepalive period with nothing else sent).</summary>
    public long Pings => Interlocked.Read(ref _pings);

    private long _pings;

    /// <summary>Raised for every message on the node's topics; the broker is acknowledged after it returns.</summary>
    public event Func<MqttMessage, Task>? MessageReceived;

    /// <summary>Raised after each (re)connect and subscription.</summary>
    public event Func<Task>? Connected;

    /// <summary>Connects and stays connected until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var attempt = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!_client.IsConnected && _held is null)
            {
                try
                {
                    await ConnectAsync(cancellationToken).ConfigureAwait(false);
                    attempt = 0;
                }
                catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    attempt++;
                    var delay = Backoff(attempt);
                    if (attempt == 1 || attempt % 10 == 0)
                    {
                        LogConnectFailed(_options.Url.ToString(), e.Message, delay.TotalSeconds);
                    }

                    await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                    continue;
                }
            }

            // Wait for a disconnect (or a periodic check).
            await _wake.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Takes the link down and keeps it down until <see cref="Release"/>: the agent is hung, so the
    /// master must stop counting its open session as proof of life. Says "offline" on the presence
    /// topic itself and then disconnects asking for the will too (MQTT 5 reason 0x04, which mosquitto
    /// honours; MQTTnet's broker treats any DISCONNECT as clean, hence the explicit presence).
    /// </summary>
    public async Task HoldAsync(string reason, CancellationToken cancellationToken)
    {
        if (_held is null)
        {
            LogHeld(reason);
        }

        // Called again while held, it takes down a connection that was being made meanwhile.
        _held = reason;
        if (!_client.IsConnected)
        {
            return;
        }

        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            await PublishRawAsync(Topics.Presence(_nodeName), Encoding.UTF8.GetBytes(Presence.Offline), retain: true, timeout.Token).ConfigureAwait(false);
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.DisconnectWithWillMessage).Build(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
        {
            // Gone already: the broker publishes the will when its keepalive runs out.
        }
    }

    /// <summary>Lets the link connect again after <see cref="HoldAsync"/>.</summary>
    public void Release()
    {
        if (_held is null)
        {
            return;
        }

        _held = null;
        LogReleased();
        _wake.Release();
    }

    /// <summary>Jittered exponential backoff: 0.5 s doubling to 30 s, ±25 %.</summary>
    public static TimeSpan Backoff(int attempt)
    {
        var seconds = Math.Min(30, 0.5 * Math.Pow(2, Math.Min(attempt - 1, 10)));
        var jitter = 0.75 + (Random.Shared.NextDouble() * 0.5);
        return TimeSpan.FromSeconds(seconds * jitter);
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId("edgekube-agent-" + _nodeName)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCredentials(_options.Username, _options.Password)
            // Zero for MQTTnet, which then runs no keepalive loop of its own; the CONNECT carries the real
            // one (KeepAliveChannel) and KeepAliveAsync pings.
            .WithKeepAlivePeriod(TimeSpan.Zero)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithCleanStart(true)
            .WithWillTopic(Topics.Presence(_nodeName))
            .WithWillPayload(Presence.Offline)
            .WithWillRetain(true)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithBroker(_options.Url, _options.CaPem);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        var result = await _client.ConnectAsync(builder.Build(), timeout.Token).ConfigureAwait(false);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new InvalidOperationException($"broker refused the connection: {result.ResultCode} {result.ReasonString}");
        }

        if (_adapters.Current is { } channel)
        {
            var connection = new CancellationTokenSource();
            Interlocked.Exchange(ref _connection, connection)?.Cancel();
            _ = KeepAliveAsync(channel, connection.Token);
        }

        try
        {
            await AfterConnectAsync(timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            // Connected but not subscribed, or presence and the retained status not delivered (a broker too
            // busy to acknowledge in time): drop the connection, so the retry loop, which only looks at
            // IsConnected, connects again and does it all. Left connected, the node sent leases while the
            // master never heard its status (seen with 1,000 hollow nodes registering at once).
            try
            {
                await _client.DisconnectAsync(new MqttClientDisconnectOptions(), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
            {
            }

            throw;
        }
    }

    /// <summary>
    /// MQTT's keepalive for one connection: a PINGREQ when nothing was sent for a keepalive period, and
    /// the connection dropped (so that <see cref="RunAsync"/> connects again) when no PINGRESP comes within
    /// half of one, as MQTTnet's own loop does. It sleeps until the next ping could be due, rather than
    /// waking every 250 ms to look.
    /// </summary>
    private async Task KeepAliveAsync(KeepAliveChannel channel, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var period = channel.KeepAlive;
                var idle = channel.Idle;
                if (idle < period)
                {
                    await Task.Delay(period - idle, _time, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                using var timeout = new CancellationTokenSource(period / 2, _time);
                using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                try
                {
                    Interlocked.Increment(ref _pings);
                    await _client.PingAsync(both.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    if (!_client.IsConnected)
                    {
                        return; // lost meanwhile; RunAsync connects again
                    }

                    LogPingFailed(timeout.IsCancellationRequested ? $"no answer in {(period / 2).TotalSeconds:0.#} s" : e.Message);
                    using var close = new CancellationTokenSource(TimeSpan.FromSeconds(2), _time);
                    try
                    {
                        await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.DisconnectWithWillMessage).Build(), close.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
                    {
                        // The client is disconnected either way (MQTTnet closes the connection after trying).
                    }

                    return;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Subscribes, publishes presence and the retained messages kept, and tells the <see cref="Connected"/> handlers.</summary>
    private async Task AfterConnectAsync(CancellationToken cancellationToken)
    {
        var subscribe = _factory.CreateSubscribeOptionsBuilder();
        foreach (var filter in Topics.NodeSubscriptions(_nodeName, PodNetwork))
        {
            subscribe = subscribe.WithTopicFilter(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        var subscribed = await _client.SubscribeAsync(subscribe.Build(), cancellationToken).ConfigureAwait(false);
        foreach (var item in subscribed.Items)
        {
            if ((int)item.ResultCode > 2)
            {
                LogSubscribeRefused(item.TopicFilter.Topic, item.ResultCode.ToString());
            }
        }

        Connects++;
        LogConnected(_options.Url.ToString(), _nodeName);
        await PublishRawAsync(Topics.Presence(_nodeName), Encoding.UTF8.GetBytes(Presence.Online), retain: true, cancellationToken).ConfigureAwait(false);
        await FlushRetainedAsync(cancellationToken).ConfigureAwait(false);
        foreach (var handler in Connected?.GetInvocationList().Cast<Func<Task>>() ?? [])
        {
            await handler().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Publishes a retained message, or keeps it for the next connect when there is no link. Only the
    /// latest payload per topic is kept; an empty payload clears the topic.
    /// </summary>
    public async Task PublishRetainedAsync(string topic, byte[] payload, CancellationToken cancellationToken)
    {
        lock (_retained)
        {
            _retained[topic] = payload;
        }

        if (_client.IsConnected)
        {
            try
            {
                await PublishRawAsync(topic, payload, retain: true, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
            {
                // Published again on the next connect.
            }
        }
    }

    /// <summary>
    /// Publishes a heartbeat (the lease) if connected, retained at QoS 0: no acknowledgement travels
    /// back, a lost one is made good by the next, and the retained copy tells a master that connects
    /// later what the node declared. Not kept for the next connect. False when not sent.
    /// </summary>
    public async Task<bool> PublishHeartbeatAsync(string topic, byte[] payload, CancellationToken cancellationToken)
    {
        if (!_client.IsConnected)
        {
            return false;
        }

        try
        {
            await PublishRawAsync(topic, payload, retain: true, cancellationToken, qos: MqttQualityOfServiceLevel.AtMostOnce).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Publishes a non-retained message if connected (replies); dropped otherwise.</summary>
    public async Task<bool> PublishAsync(string topic, byte[] payload, CancellationToken cancellationToken, byte[]? correlation = null)
    {
        if (!_client.IsConnected)
        {
            return false;
        }

        try
        {
            await PublishRawAsync(topic, payload, retain: false, cancellationToken, correlation).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
        {
            return false;
        }
    }

    private async Task FlushRetainedAsync(CancellationToken cancellationToken)
    {
        List<KeyValuePair<string, byte[]>> all;
        lock (_retained)
        {
            all = [.. _retained];
        }

        foreach (var (topic, payload) in all)
        {
            await PublishRawAsync(topic, payload, retain: true, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PublishRawAsync(string topic, byte[] payload, bool retain, CancellationToken cancellationToken, byte[]? correlation = null,
        MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce)
    {
        var message = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload)
            .WithRetainFlag(retain)
            .WithQualityOfServiceLevel(qos);
        if (correlation is not null)
        {
            message = message.WithCorrelationData(correlation);
        }

        await _publishLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await _client.PublishAsync(message.Build(), cancellationToken).ConfigureAwait(false);
            if (!result.IsSuccess && result.ReasonCode != MqttClientPublishReasonCode.NoMatchingSubscribers)
            {
                LogPublishRefused(topic, result.ReasonCode.ToString());
            }
        }
        finally
        {
            _publishLock.Release();
        }
    }

    private async Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        var payload = e.ApplicationMessage.Payload.ToArray();
        var message = new MqttMessage(e.ApplicationMessage.Topic, payload, e.ApplicationMessage.Retain,
            e.ApplicationMessage.ResponseTopic, e.ApplicationMessage.CorrelationData);
        foreach (var handler in MessageReceived?.GetInvocationList().Cast<Func<MqttMessage, Task>>() ?? [])
        {
            try
            {
                await handler(message).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A bad message never takes the link down.
                LogHandlerFailed(message.Topic, ex.Message);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            try
            {
                // A clean stop: say offline ourselves (the will is only sent on a lost connection).
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await PublishRawAsync(Topics.Presence(_nodeName), Encoding.UTF8.GetBytes(Presence.Offline), retain: true, cts.Token).ConfigureAwait(false);
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), cts.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
            {
            }
        }

        Interlocked.Exchange(ref _connection, null)?.Cancel();
        _client.Dispose();
        _publishLock.Dispose();
        _wake.Dispose();
    }

    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Connected to broker {Url} as node {Node}")]
    private partial void LogConnected(string url, string node);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Cannot reach broker {Url}: {Error}; retrying in {Seconds:0.0}s")]
    private partial void LogConnectFailed(string url, string error, double seconds);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Disconnected from broker ({Reason}) {Error}; pods keep running")]
    private partial void LogDisconnected(string reason, string error);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Broker refused subscription to {Topic}: {Reason}")]
    private partial void LogSubscribeRefused(string topic, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Broker refused publish to {Topic}: {Reason}")]
    private partial void LogPublishRefused(string topic, string reason);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Broker did not answer a keepalive ping ({Error}); reconnecting")]
    private partial void LogPingFailed(string error);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Error, Message = "Broker link held down, node reported offline: {Reason}")]
    private partial void LogHeld(string reason);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Broker link released: connecting again")]
    private partial void LogReleased();

    [LoggerMessage(EventId = 1005, Level = LogLevel.Error, Message = "Message on {Topic} could not be handled: {Error}")]
    private partial void LogHandlerFailed(string topic, string error);
}
