using System.Globalization;
using System.Text.Json;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Board.Leds;

/// <summary>
/// Starts and stops the LED board's identify from the node's retained <c>nodes/{node}/identify</c> topic
/// (<c>kubectl annotate node NAME edgekube.io/identify=30s</c> through the master). Each request is handled
/// once: the same payload again (delivered anew on every reconnect) leaves a running identify alone, a
/// different one starts afresh, an empty one stops it.
/// </summary>
public sealed partial class IdentifyListener(Topics topics, string nodeName, Func<LedBoard?> leds, ILogger<IdentifyListener> logger)
{
    private readonly Lock _lock = new();
    private string? _handled;

    public Task HandleAsync(MqttMessage message)
    {
        if (message.Topic != topics.Identify(nodeName))
        {
            return Task.CompletedTask;
        }

        var text = message.Text;
        lock (_lock)
        {
            if (text == _handled)
            {
                return Task.CompletedTask;
            }

            _handled = text;
        }

        var board = leds();
        if (text.Length == 0)
        {
            board?.Identify(TimeSpan.Zero);
            return Task.CompletedTask;
        }

        IdentifyRequest? request;
        try
        {
            request = JsonSerializer.Deserialize(message.Payload.Span, ProtocolJson.Default.IdentifyRequest);
        }
        catch (JsonException e)
        {
            LogBadRequest(e.Message);
            return Task.CompletedTask;
        }

        if (request is null || !double.IsFinite(request.Seconds) || request.Seconds <= 0 || request.Seconds > TimeSpan.FromDays(1).TotalSeconds)
        {
            LogBadRequest($"seconds must be between 0 and 86400, not {request?.Seconds.ToString(CultureInfo.InvariantCulture) ?? "null"}");
            return Task.CompletedTask;
        }

        if (board is null)
        {
            LogNoLeds(request.Duration);
            return Task.CompletedTask;
        }

        board.Identify(TimeSpan.FromSeconds(request.Seconds));
        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 1410, Level = LogLevel.Warning, Message = "Ignoring a bad identify request: {Error}")]
    private partial void LogBadRequest(string error);

    [LoggerMessage(EventId = 1411, Level = LogLevel.Warning, Message = "Identify for {Duration} requested, but this node has no LEDs (board.leds in its config)")]
    private partial void LogNoLeds(string duration);
}
