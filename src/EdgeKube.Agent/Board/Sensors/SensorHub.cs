using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Node;
using EdgeKube.Protocol;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Board.Sensors;

/// <summary>A configured sensor: its settings and how to open it.</summary>
public sealed record SensorSpec(string Name, SensorKind Kind, TimeSpan Interval, double? Delta, TimeSpan Refresh, Func<ISensor> Open)
{
    /// <summary>A sensor failing for this long (since its last good read, or since the start) counts as absent: its label goes.</summary>
    public TimeSpan AbsentAfter { get; init; } = SensorHub.DefaultAbsentAfter;
}

/// <summary>
/// What the master is told about one sensor: the last values sent, or the error; <paramref name="Absent"/>
/// once it has failed for longer than its <see cref="SensorSpec.AbsentAfter"/>.
/// </summary>
public sealed record SensorState(string Name, string Type, IReadOnlyList<Reading> Values, string? Error, DateTimeOffset? Time, bool Absent = false);

/// <summary>
/// Reads every sensor on its own interval, each in its own loop so a slow or broken one stops no other.
/// A failure is reported (the sensor's state carries the error and no values) and retried with backoff
/// (interval doubling to 5 min). Only changes beyond the sensor's delta, or the periodic refresh, change
/// what is sent, so a quiet board publishes almost nothing. Adds the readings to the node as annotations
/// (<c>edgekube.io/{sensor}.{quantity}</c> with units, and <c>edgekube.io/sensors</c>, the structured form)
/// and a label per sensor present (<c>sensors.edgekube.io/{sensor}</c> = its type, for nodeSelector), and
/// serves them on /metrics. The label stays through a passing failure (a DHT22 misses a read now and then)
/// and goes once the sensor has failed for its <see cref="SensorSpec.AbsentAfter"/>: scheduling should not
/// flap with every bad read, nor trust a sensor that is gone. It comes back with the next good read.
/// </summary>
public sealed partial class SensorHub(IReadOnlyList<SensorSpec> specs, TimeProvider time, ILogger<SensorHub> logger) : INodeDecorator
{
    public const string StructuredAnnotation = NodeKeys.Sensors;
    public const string LabelPrefix = NodeKeys.SensorLabelPrefix;
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan DefaultAbsentAfter = TimeSpan.FromMinutes(5);

    // A sensor never read counts its failure from the agent's start.
    private readonly DateTimeOffset _started = time.GetUtcNow();
    private readonly Dictionary<string, DateTimeOffset> _lastGood = [];
    private readonly TaskCompletionSource _firstRound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HashSet<string> _tried = [];

    private readonly Lock _lock = new();
    private readonly Dictionary<string, SensorState> _sent = [];
    private readonly Dictionary<string, (IReadOnlyList<Reading> Values, string? Error)> _latest = [];
    private readonly Dictionary<string, long> _errors = [];
    private (string Status, DateTime Since)? _ready;

    public IReadOnlyList<SensorSpec> Specs => specs;

    /// <summary>Completes once every sensor has been read (or has failed) once: the node's first report waits for it.</summary>
    public Task FirstRound => specs.Count == 0 ? Task.CompletedTask : _firstRound.Task;

    /// <summary>The states as sent to the master, by sensor name.</summary>
    public IReadOnlyDictionary<string, SensorState> Sent
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<string, SensorState>(_sent);
            }
        }
    }

    public Task RunAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(specs.Select(s => Task.Run(() => RunSensorAsync(s, cancellationToken), CancellationToken.None)));

    private async Task RunSensorAsync(SensorSpec spec, CancellationToken cancellationToken)
    {
        ISensor? sensor = null;
        var delay = spec.Interval;
        while (!cancellationToken.IsCancellationRequested)
        {
            delay = Step(spec, ref sensor);
            try
            {
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        sensor?.Dispose();
    }

    /// <summary>One read of one sensor; returns the time to wait before the next (the interval, or the backoff after a failure).</summary>
    public TimeSpan Step(SensorSpec spec, ref ISensor? sensor)
    {
        try
        {
            sensor ??= spec.Open();
            var values = sensor.Read();
            Record(spec, values, null);
            lock (_lock)
            {
                _errors.Remove(spec.Name + "#streak");
            }

            return spec.Interval;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Missing, disconnected or garbage: reported, retried with backoff, never fatal.
            var message = e is SensorException or IOException or UnauthorizedAccessException ? e.Message : $"{e.GetType().Name}: {e.Message}";
            try
            {
                sensor?.Dispose();
            }
            catch (Exception disposeError) when (disposeError is not OutOfMemoryException)
            {
            }

            sensor = null;
            long streak;
            lock (_lock)
            {
                _errors[spec.Name] = _errors.GetValueOrDefault(spec.Name) + 1;
                streak = _errors[spec.Name + "#streak"] = _errors.GetValueOrDefault(spec.Name + "#streak") + 1;
            }

            if (streak == 1)
            {
                LogSensorFailed(spec.Name, SensorKinds.Name(spec.Kind), message);
            }

            Record(spec, [], message);
            var backoff = TimeSpan.FromTicks(spec.Interval.Ticks * (1L << (int)Math.Min(streak, 16)));
            return backoff > MaxBackoff ? MaxBackoff : backoff;
        }
    }

    private void Record(SensorSpec spec, IReadOnlyList<Reading> values, string? error)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            _latest[spec.Name] = (values, error);
            if (error is null)
            {
                _lastGood[spec.Name] = now;
            }

            var absent = error is not null && now - _lastGood.GetValueOrDefault(spec.Name, _started) >= spec.AbsentAfter;
            if (absent && _sent.TryGetValue(spec.Name, out var before) && !before.Absent)
            {
                LogAbsent(spec.Name, spec.AbsentAfter.TotalSeconds);
            }

            _sent.TryGetValue(spec.Name, out var sent);
            var send = sent is null
                || sent.Error != error
                || sent.Absent != absent
                || now - sent.Time >= spec.Refresh
                || values.Count != sent.Values.Count
                || values.Zip(sent.Values).Any(p => p.First.Quantity != p.Second.Quantity || Math.Abs(p.First.Value - p.Second.Value) > (spec.Delta ?? DefaultDelta(p.First)));
            if (send)
            {
                _sent[spec.Name] = new SensorState(spec.Name, SensorKinds.Name(spec.Kind), values, error, now, absent);
            }

            if (_tried.Add(spec.Name) && _tried.Count == specs.Count)
            {
                _firstRound.TrySetResult();
            }
        }
    }

    /// <summary>The change that is worth sending when the config gives no delta.</summary>
    public static double DefaultDelta(Reading r) => r.Unit switch
    {
        "°C" => 0.5,
        "%" => 2,
        "hPa" => 1,
        "V" => 0.1,
        "A" => 0.05,
        "W" => 0.25,
        _ => 0, // states: every change
    };

    public void Decorate(V1Node node)
    {
        if (specs.Count == 0)
        {
            return;
        }

        // Every configured sensor: one not read yet (the report did not wait for it) is present until it fails for long.
        var sent = Sent;
        var states = specs.Select(s => sent.GetValueOrDefault(s.Name) ?? new SensorState(s.Name, SensorKinds.Name(s.Kind), [], null, null))
            .OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
        node.Metadata.Annotations ??= new Dictionary<string, string>();
        foreach (var s in states)
        {
            if (!s.Absent)
            {
                node.Metadata.Labels[LabelPrefix + s.Name] = s.Type;
            }

            foreach (var r in s.Values)
            {
                node.Metadata.Annotations[$"edgekube.io/{s.Name}.{r.Quantity}"] = Format(r);
            }

            if (s.Error is not null)
            {
                node.Metadata.Annotations[$"edgekube.io/{s.Name}.error"] = s.Error;
            }
        }

        node.Metadata.Annotations[StructuredAnnotation] = Structured(states);
        var failed = states.Where(s => s.Error is not null).ToList();
        var status = failed.Count == 0 ? "True" : "False";
        if (_ready?.Status != status)
        {
            _ready = (status, time.GetUtcNow().UtcDateTime.TruncateToSecondsUtc());
        }

        node.Status.Conditions.Add(new V1NodeCondition
        {
            Type = "SensorsReady",
            Status = status,
            Reason = failed.Count == 0 ? "SensorsReporting" : "SensorFailed",
            Message = failed.Count == 0
                ? $"{states.Count} sensor(s) reporting"
                : string.Join("; ", failed.Select(f => $"{f.Name} ({f.Type}): {f.Error}")),
            LastHeartbeatTime = _ready.Value.Since,
            LastTransitionTime = _ready.Value.Since,
        });
    }

    /// <summary>A reading as an annotation value: "23.41 °C", "on".</summary>
    public static string Format(Reading r) => r.Unit == "state"
        ? (r.Value != 0 ? "on" : "off")
        : string.Create(CultureInfo.InvariantCulture, $"{r.Value} {r.Unit}");

    /// <summary>The structured form: a JSON array of {name, type, readings: [{quantity, value, unit}], error, absent, time}.</summary>
    public static string Structured(IEnumerable<SensorState> states)
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping keeps "°C" readable in kubectl output (the text is a JSON string in an annotation, never HTML).
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartArray();
            foreach (var s in states)
            {
                w.WriteStartObject();
                w.WriteString("name", s.Name);
                w.WriteString("type", s.Type);
                w.WriteStartArray("readings");
                foreach (var r in s.Values)
                {
                    w.WriteStartObject();
                    w.WriteString("quantity", r.Quantity);
                    w.WriteNumber("value", r.Value);
                    w.WriteString("unit", r.Unit);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                if (s.Error is not null)
                {
                    w.WriteString("error", s.Error);
                }

                if (s.Absent)
                {
                    w.WriteBoolean("absent", true);
                }

                if (s.Time is { } t)
                {
                    w.WriteString("time", t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Labelled gauges of the latest readings (not only the sent ones) on the agent's /metrics.</summary>
    public void WriteMetrics(StringBuilder sb)
    {
        lock (_lock)
        {
            sb.AppendLine("# HELP edgekube_sensor_value The latest reading of a board sensor, in its unit.");
            sb.AppendLine("# TYPE edgekube_sensor_value gauge");
            foreach (var spec in specs)
            {
                if (_latest.TryGetValue(spec.Name, out var latest))
                {
                    foreach (var r in latest.Values)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"edgekube_sensor_value{{sensor=\"{spec.Name}\",type=\"{SensorKinds.Name(spec.Kind)}\",quantity=\"{r.Quantity}\",unit=\"{r.Unit}\"}} {r.Value}\n");
                    }
                }
            }

            sb.AppendLine("# HELP edgekube_sensor_up Whether the sensor's last read succeeded.");
            sb.AppendLine("# TYPE edgekube_sensor_up gauge");
            foreach (var spec in specs)
            {
                var up = _latest.TryGetValue(spec.Name, out var latest) && latest.Error is null ? 1 : 0;
                sb.Append(CultureInfo.InvariantCulture, $"edgekube_sensor_up{{sensor=\"{spec.Name}\",type=\"{SensorKinds.Name(spec.Kind)}\"}} {up}\n");
            }

            sb.AppendLine("# HELP edgekube_sensor_errors_total Failed reads of the sensor.");
            sb.AppendLine("# TYPE edgekube_sensor_errors_total counter");
            foreach (var spec in specs)
            {
                sb.Append(CultureInfo.InvariantCulture, $"edgekube_sensor_errors_total{{sensor=\"{spec.Name}\",type=\"{SensorKinds.Name(spec.Kind)}\"}} {_errors.GetValueOrDefault(spec.Name)}\n");
            }
        }
    }

    [LoggerMessage(EventId = 1311, Level = LogLevel.Warning, Message = "Sensor {Sensor} has failed for {Seconds} s: counted as absent, its node label is removed until it reads again")]
    private partial void LogAbsent(string sensor, double seconds);

    [LoggerMessage(EventId = 1310, Level = LogLevel.Warning, Message = "Sensor {Sensor} ({Type}) failed: {Error}; retrying with backoff")]
    private partial void LogSensorFailed(string sensor, string type, string error);
}
