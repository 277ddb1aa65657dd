using System.Net;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using MQTTnet.Adapter;
using MQTTnet.Diagnostics.Logger;
using MQTTnet.Formatter;
using MQTTnet.Implementations;
using MQTTnet.Packets;

namespace EdgeKube.Agent.Mqtt;

/// <summary>
/// MQTTnet's connection to the broker with the keepalive taken over by <see cref="MqttLink"/>.
/// MQTTnet's client wakes every 250 ms per connection to see whether a ping is due: four timer wake-ups a
/// second on an idle board, and 40,000 a second for 10,000 hollow nodes in one bench process. The link
/// gives MQTTnet a keepalive of zero, so MQTTnet runs no keepalive loop, and this adapter:
/// <list type="bullet">
/// <item>writes the real keepalive into the CONNECT packet, so the broker still holds the client to it
/// (and publishes the will 1.5 keepalives after a silent cut);</item>
/// <item>notes when a packet was last sent, so the link pings only after a keepalive without one
/// (MQTT-3.1.2-22);</item>
/// <item>takes a Server Keep Alive from the CONNACK (MQTT-3.2.2-21: the client must use it) and hides it
/// from MQTTnet, whose loop would otherwise start and ping every 250 ms with a keepalive of zero.</item>
/// </list>
/// </summary>
internal sealed class KeepAliveChannel(IMqttChannelAdapter inner, ushort keepAliveSeconds, TimeProvider time) : IMqttChannelAdapter
{
    private long _lastSent = time.GetTimestamp();

    /// <summary>The keepalive in effect: the broker's Server Keep Alive when it sent one, else ours.</summary>
    public TimeSpan KeepAlive { get; private set; } = TimeSpan.FromSeconds(keepAliveSeconds);

    /// <summary>Time since the last packet went out.</summary>
    public TimeSpan Idle => time.GetElapsedTime(Interlocked.Read(ref _lastSent));

    public long BytesReceived => inner.BytesReceived;

    public long BytesSent => inner.BytesSent;

    public X509Certificate2 ClientCertificate => inner.ClientCertificate;

    public EndPoint RemoteEndPoint => inner.RemoteEndPoint;

    public EndPoint LocalEndPoint => inner.LocalEndPoint;

    public bool IsSecureConnection => inner.IsSecureConnection;

    public MqttPacketFormatterAdapter PacketFormatterAdapter => inner.PacketFormatterAdapter;

    public Task ConnectAsync(CancellationToken cancellationToken) => inner.ConnectAsync(cancellationToken);

    public Task DisconnectAsync(CancellationToken cancellationToken) => inner.DisconnectAsync(cancellationToken);

    public async Task<MqttPacket> ReceivePacketAsync(CancellationToken cancellationToken)
    {
        var packet = await inner.ReceivePacketAsync(cancellationToken).ConfigureAwait(false);
        if (packet is MqttConnAckPacket { ServerKeepAlive: > 0 } ack)
        {
            KeepAlive = TimeSpan.FromSeconds(ack.ServerKeepAlive);
            ack.ServerKeepAlive = 0;
        }

        return packet;
    }

    public void ResetStatistics() => inner.ResetStatistics();

    public async Task SendPacketAsync(MqttPacket packet, CancellationToken cancellationToken)
    {
        if (packet is MqttConnectPacket connect)
        {
            connect.KeepAlivePeriod = keepAliveSeconds;
        }

        await inner.SendPacketAsync(packet, cancellationToken).ConfigureAwait(false);
        Interlocked.Exchange(ref _lastSent, time.GetTimestamp());
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>Makes MQTTnet's own adapters and wraps each in a <see cref="KeepAliveChannel"/>; <see cref="Current"/> is the newest.</summary>
internal sealed class KeepAliveAdapterFactory(ushort keepAliveSeconds, TimeProvider time) : IMqttClientAdapterFactory
{
    private readonly MqttClientAdapterFactory _inner = new();

    public KeepAliveChannel? Current { get; private set; }

    public IMqttChannelAdapter CreateClientAdapter(MqttClientOptions options, MqttPacketInspector packetInspector, IMqttNetLogger logger)
    {
        var channel = new KeepAliveChannel(_inner.CreateClientAdapter(options, packetInspector, logger), keepAliveSeconds, time);
        Current = channel;
        return channel;
    }
}
