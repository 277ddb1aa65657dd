using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeKube.Agent.Board.Sensors;
using EdgeKube.Agent.Node;

namespace EdgeKube.Agent.Board;

/// <summary>The <c>board:</c> part of the agent's config file: thermal thresholds, sensors, LEDs and device resources.</summary>
public sealed record BoardConfig
{
    public ThermalConfig? Thermal { get; init; }

    public List<SensorConfig>? Sensors { get; init; }

    public LedConfig? Leds { get; init; }

    public List<DeviceResourceConfig>? Devices { get; init; }

    /// <summary>The GPIO chip sensors and LEDs use (<c>/dev/gpiochip{N}</c>).</summary>
    public int? GpioChip { get; init; }

    public ThermalSettings ThermalSettings() => new(
        Thermal?.Zone ?? "thermal_zone0",
        Thermal?.ThrottleCelsius ?? 80,
        Thermal?.ClearCelsius ?? Thermal?.ThrottleCelsius - 5 ?? 75);

    /// <summary>Every problem, each naming the setting; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Thermal is { } t)
        {
            if (t.ThrottleCelsius is < 20 or > 150)
            {
                errors.Add("board.thermal.throttleCelsius: must be between 20 and 150");
            }

            if (t.ClearCelsius is { } clear && clear > (t.ThrottleCelsius ?? 80))
            {
                errors.Add("board.thermal.clearCelsius: must not be above throttleCelsius");
            }

            if (t.Zone is { } zone && (zone.Contains('/', StringComparison.Ordinal) || zone.Contains("..", StringComparison.Ordinal)))
            {
                errors.Add($"board.thermal.zone: \"{zone}\" must be a thermal zone name such as thermal_zone0");
            }
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < (Sensors?.Count ?? 0); i++)
        {
            var s = Sensors![i];
            var where = $"board.sensors[{i}]";
            if (s.Name is not { Length: > 0 } name || !Pods.PodValidation.IsDns1123Label(name))
            {
                errors.Add($"{where}.name: \"{s.Name}\" must be a lower-case DNS label (it names annotations, labels and metrics)");
            }
            else if (!names.Add(name))
            {
                errors.Add($"{where}.name: \"{name}\" is used twice");
            }

            if (SensorKinds.Parse(s.Type) is not { } kind)
            {
                errors.Add($"{where}.type: \"{s.Type}\" is not one of {string.Join(", ", SensorKinds.Names)}");
                continue;
            }

            if (kind is SensorKind.Bme280 or SensorKind.Bmp280 or SensorKind.Ina219 && s.Address is not (>= 0x03 and <= 0x77))
            {
                errors.Add($"{where}.address: an I2C address (0x03-0x77) is required for {s.Type}");
            }

            if (kind is SensorKind.Dht22 or SensorKind.GpioInput && s.Pin is not (>= 0 and < 1024))
            {
                errors.Add($"{where}.pin: a GPIO line number is required for {s.Type}");
            }

            if (kind is SensorKind.Ds18b20 && s.Device is { } dev && (dev.Contains('/', StringComparison.Ordinal) || dev.Contains("..", StringComparison.Ordinal)))
            {
                errors.Add($"{where}.device: \"{dev}\" must be a 1-wire device id such as 28-0316a4c2f1ff");
            }

            if (s.Interval is { } interval && interval < TimeSpan.FromMilliseconds(10))
            {
                errors.Add($"{where}.interval: must be at least 10ms");
            }

            if (s.AbsentAfter is { } absentAfter && absentAfter <= TimeSpan.Zero)
            {
                errors.Add($"{where}.absentAfter: must be positive");
            }

            if (s.Delta is < 0)
            {
                errors.Add($"{where}.delta: must not be negative");
            }
        }

        if (Leds is { } leds)
        {
            foreach (var (pin, name) in new[] { (leds.Red, "red"), (leds.Amber, "amber"), (leds.Green, "green") })
            {
                if (pin is < 0 or >= 1024)
                {
                    errors.Add($"board.leds.{name}: \"{pin}\" is not a GPIO line number");
                }
            }

            foreach (var led in leds.BoardLeds ?? [])
            {
                if (led.Contains('/', StringComparison.Ordinal) || led.Contains("..", StringComparison.Ordinal) || led.Length == 0)
                {
                    errors.Add($"board.leds.boardLeds: \"{led}\" must be a name under /sys/class/leds");
                }
            }
        }

        for (var i = 0; i < (Devices?.Count ?? 0); i++)
        {
            var d = Devices![i];
            if (d.Resource is not { } r || !r.Contains('/', StringComparison.Ordinal) || r.StartsWith("kubernetes.io/", StringComparison.Ordinal))
            {
                errors.Add($"board.devices[{i}].resource: \"{d.Resource}\" must be an extended resource name such as edgekube.io/gpio");
            }

            if (d.Paths is not { Count: > 0 } || d.Paths.Any(p => !Path.IsPathRooted(DeviceResources.Split(p).Host) || !Path.IsPathRooted(DeviceResources.Split(p).Container)))
            {
                errors.Add($"board.devices[{i}].paths: one or more absolute device paths (HOST or HOST:CONTAINER) are required");
            }

            if (d.Capacity is < 1 or > 1000)
            {
                errors.Add($"board.devices[{i}].capacity: must be between 1 and 1000");
            }
        }

        return errors;
    }
}

/// <summary>Thermal throttling thresholds and the zone the CPU temperature comes from.</summary>
public sealed record ThermalConfig
{
    public string? Zone { get; init; }

    public double? ThrottleCelsius { get; init; }

    public double? ClearCelsius { get; init; }
}

/// <summary>One sensor or GPIO input.</summary>
public sealed record SensorConfig
{
    public string? Name { get; init; }

    public string? Type { get; init; }

    /// <summary>I2C bus number (<c>/dev/i2c-{bus}</c>), default 1.</summary>
    public int? Bus { get; init; }

    [JsonConverter(typeof(IntOrHexConverter))]
    public int? Address { get; init; }

    public int? Pin { get; init; }

    /// <summary>DS18B20: the 1-wire device id; the first 28-* device when absent.</summary>
    public string? Device { get; init; }

    [JsonConverter(typeof(DurationConverter))]
    public TimeSpan? Interval { get; init; }

    /// <summary>A reading is sent when it moved by more than this (in its unit) since the last one sent.</summary>
    public double? Delta { get; init; }

    /// <summary>A reading is sent at least this often even when quiet.</summary>
    [JsonConverter(typeof(DurationConverter))]
    public TimeSpan? Refresh { get; init; }

    /// <summary>A sensor failing for this long counts as absent: its node label is removed (default 5m).</summary>
    [JsonConverter(typeof(DurationConverter))]
    public TimeSpan? AbsentAfter { get; init; }

    /// <summary>GPIO inputs: a level must hold this long to count.</summary>
    [JsonConverter(typeof(DurationConverter))]
    public TimeSpan? Debounce { get; init; }

    /// <summary>GPIO inputs: the pin reads low when the switch is on (pull-up wiring).</summary>
    public bool? ActiveLow { get; init; }

    /// <summary>INA219: the shunt resistor, ohms (default 0.1).</summary>
    public double? ShuntOhms { get; init; }

    /// <summary>INA219: the largest current expected, amperes (default 3.2).</summary>
    public double? MaxCurrent { get; init; }
}

/// <summary>The LED status board.</summary>
public sealed record LedConfig
{
    public int? Red { get; init; }

    public int? Amber { get; init; }

    public int? Green { get; init; }

    /// <summary>The LEDs light when the pin is low.</summary>
    public bool? ActiveLow { get; init; }

    /// <summary>Kernel LED class names (<c>/sys/class/leds/{name}</c>) used as status LEDs, e.g. ACT and PWR; first is green, second red.</summary>
    public List<string>? BoardLeds { get; init; }
}

/// <summary>An extended resource that hands device nodes to the pods that request it.</summary>
public sealed record DeviceResourceConfig
{
    public string? Resource { get; init; }

    public List<string>? Paths { get; init; }

    /// <summary>How many pods may hold the resource at once (the count in the node's capacity), default 1.</summary>
    public int? Capacity { get; init; }
}

/// <summary>An int given as a number or as a hex string such as 0x76.</summary>
public sealed class IntOrHexConverter : JsonConverter<int?>
{
    public override int? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            return reader.GetInt32();
        }

        var text = reader.GetString() ?? throw new JsonException("expected a number");
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && int.TryParse(text[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex))
        {
            return hex;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : throw new JsonException("expected a number");
    }

    public override void Write(Utf8JsonWriter writer, int? value, JsonSerializerOptions options)
    {
        if (value is { } v)
        {
            writer.WriteNumberValue(v);
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}

/// <summary>A duration as Go and Kubernetes write it (<c>500ms</c>, <c>10s</c>, <c>5m</c>, <c>1h</c>) or a number of seconds.</summary>
public sealed class DurationConverter : JsonConverter<TimeSpan?>
{
    public override TimeSpan? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            return TimeSpan.FromSeconds(reader.GetDouble());
        }

        return Parse(reader.GetString()) ?? throw new JsonException("expected a duration such as 500ms, 10s or 5m");
    }

    public override void Write(Utf8JsonWriter writer, TimeSpan? value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value is { } v ? $"{v.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms" : null);

    /// <summary>Parses a Go duration (<c>1h30m</c>, <c>500ms</c>, <c>10s</c>, <c>2.5s</c>) or a bare number of seconds; null when it is neither or negative.</summary>
    public static TimeSpan? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
        {
            return double.IsFinite(seconds) && seconds >= 0 && seconds < TimeSpan.MaxValue.TotalSeconds ? TimeSpan.FromSeconds(seconds) : null;
        }

        return EdgeKube.Protocol.GoDuration.TryParse(text, out var duration) && duration >= TimeSpan.Zero ? duration : null;
    }
}
