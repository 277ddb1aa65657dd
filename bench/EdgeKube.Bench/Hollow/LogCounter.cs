using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Bench.Hollow;

/// <summary>
/// Counts the hollow nodes' warnings and errors by logger and event, without formatting them: 10,000 agents
/// in one process cannot print every line, but a run that loses nodes must say which deadline dropped them
/// (a ping left unanswered, a connect that timed out, a status that never left).
/// </summary>
public sealed class LogCounter : ILoggerProvider
{
    private readonly ConcurrentDictionary<(string Category, int Id, string? Name, string? Reason, string? Error, LogLevel Level), Tally> _counts = new();

    public ILogger CreateLogger(string categoryName) => new Counting(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    /// <summary>
    /// Counts so far, largest first, with the first and last time (UTC):
    /// "MqttLink 1008 LogPingFailed (Warning) × 12, 10:01:02–10:01:09".
    /// </summary>
    public IReadOnlyList<string> Summary() =>
        [.. Tallies().OrderByDescending(t => t.Value.Count)
            .Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key} × {t.Value.Count}, {t.Value.First:HH:mm:ss.f}–{t.Value.Last:HH:mm:ss.f}"))];

    /// <summary>Counts so far, by "logger id name [reason] [error] (level)".</summary>
    public IReadOnlyDictionary<string, long> Counts() => Tallies().ToDictionary(t => t.Key, t => t.Value.Count);

    private IEnumerable<KeyValuePair<string, Tally>> Tallies() =>
        _counts.Select(kv => KeyValuePair.Create(
            string.Create(CultureInfo.InvariantCulture, $"{kv.Key.Category} {kv.Key.Id} {kv.Key.Name}{(kv.Key.Reason is null ? string.Empty : " " + kv.Key.Reason)}{(string.IsNullOrEmpty(kv.Key.Error) ? string.Empty : " [" + kv.Key.Error + "]")} ({kv.Key.Level})"),
            kv.Value));

    public void Dispose()
    {
    }

    private sealed class Counting(LogCounter owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                // A structured Reason (the link's disconnect reason, a refusal's reason code) and Error (what
                // failed: who closed a connection) split the count; an error is cut short, as it may name a peer.
                var fields = state as IReadOnlyList<KeyValuePair<string, object?>>;
                var reason = fields?.FirstOrDefault(f => f.Key == "Reason").Value?.ToString();
                var error = fields?.FirstOrDefault(f => f.Key == "Error").Value?.ToString();
                var now = DateTime.UtcNow;
                owner._counts.AddOrUpdate((category, eventId.Id, eventId.Name, reason, error is { Length: > 100 } ? error[..100] : error, logLevel),
                    _ => new Tally(1, now, now), (_, t) => t with { Count = t.Count + 1, Last = now });
            }
        }
    }

    private readonly record struct Tally(long Count, DateTime First, DateTime Last);
}
