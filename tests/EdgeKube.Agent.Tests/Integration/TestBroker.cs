using System.Collections.Concurrent;
using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// A real MQTT broker (MQTTnet's server) on a free loopback port that accepts only the given
/// credentials, plus a "master" client of the test's own that sees every message.
/// </summary>
public sealed class TestBroker : IAsyncDisposable
{
    private readonly MqttServer _server;
    private readonly Dictionary<string, string> _users;
    private IMqttClient? _observer;

    public TestBroker(Dictionary<string, string> users, int? port = null)
    {
        _users = users;
        Port = port ?? AgentProcess.FreePort();
        _server = new MqttServerFactory().CreateMqttServer(new MqttServerOptionsBuilder()
            .WithDefaultEndpoint().WithDefaultEndpointBoundIPAddress(System.Net.IPAddress.Loopback).WithDefaultEndpointPort(Port).Build());
        _server.ValidatingConnectionAsync += e =>
        {
            if (!_users.TryGetValue(e.UserName ?? string.Empty, out var password) || password != e.Password)
            {
                e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
            }

            return Task.CompletedTask;
        };
    }

    public int Port { get; }

    /// <summary>Every message seen by the observer client, in order.</summary>
    public ConcurrentQueue<(string Topic, string Payload, bool Retained)> Seen { get; } = new();

    public async Task StartAsync()
    {
        await _server.StartAsync();
        _users["master"] = "master-secret";
        var factory = new MqttClientFactory();
        _observer = factory.CreateMqttClient();
        _observer.ApplicationMessageReceivedAsync += e =>
        {
            Seen.Enqueue((e.ApplicationMessage.Topic, e.ApplicationMessage.ConvertPayloadToString() ?? string.Empty, e.ApplicationMessage.Retain));
            return Task.CompletedTask;
        };
        await _observer.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithCredentials("master", "master-secret")
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).WithClientId("test-master").Build());
        await _observer.SubscribeAsync(factory.CreateSubscribeOptionsBuilder().WithTopicFilter("#", MqttQualityOfServiceLevel.AtLeastOnce).Build());
    }

    public async Task PublishAsync(string topic, string payload, bool retain = true)
    {
        await _observer!.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload))
            .WithRetainFlag(retain).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
    }

    /// <summary>Publishes an MQTT 5 request with a response topic and correlation data.</summary>
    public async Task RequestAsync(string topic, string payload, string responseTopic, byte[] correlation)
    {
        await _observer!.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload))
            .WithResponseTopic(responseTopic).WithCorrelationData(correlation).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
    }

    /// <summary>Waits for a message on <paramref name="topic"/> whose payload satisfies <paramref name="match"/>; returns the payload.</summary>
    public async Task<string> WaitForAsync(string topic, Func<string, bool> match, TimeSpan? timeout = null)
    {
        string? found = null;
        await Eventually.Until(() =>
        {
            found = Seen.Where(m => m.Topic == topic && match(m.Payload)).Select(m => m.Payload).LastOrDefault();
            return Task.FromResult(found is not null);
        }, timeout ?? TimeSpan.FromSeconds(60), () => $"no matching message on {topic}; seen: {string.Join(", ", Seen.Select(s => s.Topic).Distinct())}\nlast: {Seen.Where(m => m.Topic == topic).Select(m => m.Payload).LastOrDefault()}");
        return found!;
    }

    /// <summary>The latest payload on the topic, or null.</summary>
    public string? Latest(string topic) => Seen.Where(m => m.Topic == topic).Select(m => m.Payload).LastOrDefault();

    public async ValueTask DisposeAsync()
    {
        if (_observer is not null)
        {
            try
            {
                await _observer.DisconnectAsync();
            }
            catch (Exception)
            {
            }

            _observer.Dispose();
        }

        await _server.StopAsync();
        _server.Dispose();
    }
}
