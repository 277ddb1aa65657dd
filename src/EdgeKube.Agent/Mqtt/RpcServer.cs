using System.Text.Json;
using EdgeKube.Agent.Pods;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Mqtt;

/// <summary>
/// Answers the master's requests on <c>nodes/{node}/rpc/{method}</c> (MQTT 5 request/response: the
/// reply goes to the request's response topic with its correlation data). Methods: <c>logs</c>.
/// </summary>
public sealed partial class RpcServer(MqttLink link, string nodeName, ContainerLogs logs, ILogger<RpcServer> logger)
{
    public async Task HandleAsync(MqttMessage message)
    {
        if (!link.Topics.TryParseNodeTopic(message.Topic, out var node, out var rest) || node != nodeName || rest.Length != 2 || rest[0] != "rpc")
        {
            return;
        }

        if (rest[1] == Topics.ResendStatus)
        {
            // The node reporter's: a request that wants the status again, not a reply.
            return;
        }

        if (string.IsNullOrEmpty(message.ResponseTopic))
        {
            LogNoResponseTopic(message.Topic);
            return;
        }

        byte[] reply;
        switch (rest[1])
        {
            case "logs":
                LogsReply answer;
                try
                {
                    var request = JsonSerializer.Deserialize(message.Payload.Span, ProtocolJson.Default.LogsRequest) ?? throw new JsonException("empty request");
                    answer = logs.Read(request);
                }
                catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
                {
                    answer = new LogsReply(string.Empty, 0, "bad logs request: " + e.Message, false);
                }

                reply = JsonSerializer.SerializeToUtf8Bytes(answer, ProtocolJson.Default.LogsReply);
                break;
            default:
                reply = JsonSerializer.SerializeToUtf8Bytes(new LogsReply(string.Empty, 0, $"unknown method {rest[1]}", false), ProtocolJson.Default.LogsReply);
                break;
        }

        await link.PublishAsync(message.ResponseTopic, reply, CancellationToken.None, correlation: message.CorrelationData).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 1300, Level = LogLevel.Warning, Message = "Request on {Topic} has no response topic; ignored")]
    private partial void LogNoResponseTopic(string topic);
}
