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
    private readonly ConcurrentDictionary<(string Category, int Id, string? Name, string? Reason, LogLevel Level), long> _counts = new();

    public ILogger CreateLogger(string categoryName) => new Counting(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    /// <summary>Counts so far, largest first: "MqttLink 1008 LogPingFailed (Warning) × 12".</summary>
    public IReadOnlyList<string> Summary() => [.. Counts().OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} × {kv.Value}")];

    /// <summary>Counts so far, by "logger id name [reason] (level)".</summary>
    public IReadOnlyDictionary<string, long> Counts() =>
        _counts.ToDictionary(
            kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key.Category} {kv.Key.Id} {kv.Key.Name}{(kv.Key.Reason is null ? string.Empty : " " + kv.Key.Reason)} ({kv.Key.Level})"),
            kv => kv.Value);

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
                // A structured Reason (the link's disconnect reason, a refusal's reason code) splits the count.
                var reason = state is IReadOnlyList<KeyValuePair<string, object?>> fields
                    ? fields.FirstOrDefault(f => f.Key == "Reason").Value?.ToString()
                    : null;
                owner._counts.AddOrUpdate((category, eventId.Id, eventId.Name, reason, logLevel), 1, (_, n) => n + 1);
            }
        }
    }
}
