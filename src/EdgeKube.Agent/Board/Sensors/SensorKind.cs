namespace EdgeKube.Agent.Board.Sensors;

/// <summary>The sensors the agent can read.</summary>
public enum SensorKind
{
    CpuTemperature,
    Bme280,
    Bmp280,
    Dht22,
    Ds18b20,
    Ina219,
    GpioInput,
}

/// <summary>The names used for <see cref="SensorKind"/> in the config file.</summary>
public static class SensorKinds
{
    public static readonly string[] Names = ["cpu-temperature", "bme280", "bmp280", "dht22", "ds18b20", "ina219", "gpio-input"];

    public static SensorKind? Parse(string? name) => name?.ToLowerInvariant() switch
    {
        "cpu-temperature" => SensorKind.CpuTemperature,
        "bme280" => SensorKind.Bme280,
        "bmp280" => SensorKind.Bmp280,
        "dht22" => SensorKind.Dht22,
        "ds18b20" => SensorKind.Ds18b20,
        "ina219" => SensorKind.Ina219,
        "gpio-input" => SensorKind.GpioInput,
        _ => null,
    };

    public static string Name(SensorKind kind) => Names[(int)kind];
}
