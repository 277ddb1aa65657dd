using System.Device.Gpio;
using System.Device.I2c;
using System.Globalization;
using EdgeKube.Agent.Node;
using Iot.Device.Adc;
using Iot.Device.Bmxx80;
using Iot.Device.DHTxx;

namespace EdgeKube.Agent.Board.Sensors;

/// <summary>One quantity read from a sensor, in its unit.</summary>
public sealed record Reading(string Quantity, double Value, string Unit);

/// <summary>A reading that cannot be trusted: the device answered with garbage.</summary>
public sealed class SensorException(string message) : Exception(message);

/// <summary>
/// One sensor. <see cref="Read"/> returns every quantity or throws (<see cref="SensorException"/>,
/// <see cref="IOException"/>, ...); the hub catches, reports and retries. Sensors get their bus or
/// controller through the constructor (the dotnet/iot convention), never open /dev themselves.
/// </summary>
public interface ISensor : IDisposable
{
    IReadOnlyList<Reading> Read();
}

/// <summary>The CPU temperature from the kernel's thermal zone (what Iot.Device.CpuTemperature reads, under an injectable sysfs root).</summary>
public sealed class CpuTemperatureSensor(HostReader host, string zone) : ISensor
{
    public IReadOnlyList<Reading> Read() =>
        [new("temperature", host.ThermalZoneCelsius(zone) ?? throw new SensorException($"no readable thermal zone {zone}"), "°C")];

    public void Dispose()
    {
    }
}

/// <summary>BME280 (temperature, humidity, pressure) or BMP280 (no humidity) over I2C, through Iot.Device.Bmxx80.</summary>
public sealed class Bmx280Sensor : ISensor
{
    private readonly I2cDevice _device;
    private Bmx280Base? _sensor;
    private readonly bool _humidity;

    public Bmx280Sensor(I2cDevice device, bool humidity)
    {
        _device = device;
        _humidity = humidity;
    }

    public IReadOnlyList<Reading> Read()
    {
        // Created on first read (and again after a failure): the constructor checks the chip id and reads calibration.
        _sensor ??= _humidity ? new Bme280(_device) : new Bmp280(_device);
        _sensor.TemperatureSampling = Sampling.UltraLowPower;
        _sensor.PressureSampling = Sampling.UltraLowPower;
        double temperature, pressure;
        double? humidity = null;
        if (_sensor is Bme280 bme)
        {
            bme.HumiditySampling = Sampling.UltraLowPower;
            var result = bme.Read();
            temperature = result.Temperature?.DegreesCelsius ?? throw new SensorException("no temperature in the reading");
            pressure = result.Pressure?.Hectopascals ?? throw new SensorException("no pressure in the reading");
            humidity = result.Humidity?.Percent ?? throw new SensorException("no humidity in the reading");
        }
        else
        {
            var bmp = (Bmp280)_sensor;
            var result = bmp.Read();
            temperature = result.Temperature?.DegreesCelsius ?? throw new SensorException("no temperature in the reading");
            pressure = result.Pressure?.Hectopascals ?? throw new SensorException("no pressure in the reading");
        }

        Plausible("temperature", temperature, -40, 85);
        Plausible("pressure", pressure, 300, 1100);
        var readings = new List<Reading> { new("temperature", Math.Round(temperature, 2), "°C"), new("pressure", Math.Round(pressure, 2), "hPa") };
        if (humidity is { } h)
        {
            Plausible("humidity", h, 0, 100);
            readings.Add(new("humidity", Math.Round(h, 2), "%"));
        }

        return readings;
    }

    internal static void Plausible(string quantity, double value, double min, double max)
    {
        if (!double.IsFinite(value) || value < min || value > max)
        {
            throw new SensorException(string.Create(CultureInfo.InvariantCulture, $"implausible {quantity} {value:0.##} (outside {min}..{max})"));
        }
    }

    public void Dispose()
    {
        _sensor?.Dispose();
        _device.Dispose();
    }
}

/// <summary>INA219 bus voltage, current and power over I2C, through Iot.Device.Adc.Ina219.</summary>
public sealed class Ina219Sensor(I2cDevice device, double shuntOhms, double maxCurrent) : ISensor
{
    private Ina219? _sensor;

    public IReadOnlyList<Reading> Read()
    {
        if (_sensor is null)
        {
            var sensor = new Ina219(device);
            sensor.Reset();
            // The datasheet's calibration: current LSB = max expected current / 2^15, cal = 0.04096 / (LSB × Rshunt).
            var lsb = maxCurrent / 32768;
            sensor.SetCalibration((ushort)Math.Min(ushort.MaxValue, Math.Truncate(0.04096 / (lsb * shuntOhms))), (float)lsb);
            _sensor = sensor;
        }

        var volts = (double)_sensor.ReadBusVoltage().Volts;
        var amps = _sensor.ReadCurrent().Amperes;
        var watts = (double)_sensor.ReadPower().Watts;
        Bmx280Sensor.Plausible("voltage", volts, 0, 32);
        return [new("voltage", Math.Round(volts, 3), "V"), new("current", Math.Round(amps, 4), "A"), new("power", Math.Round(watts, 3), "W")];
    }

    public void Dispose()
    {
        _sensor?.Dispose();
        device.Dispose();
    }
}

/// <summary>DHT22 temperature and humidity over one GPIO line, through Iot.Device.DHTxx.Dht22.</summary>
public sealed class Dht22Sensor(GpioController controller, int pin) : ISensor
{
    private Dht22? _sensor;

    public IReadOnlyList<Reading> Read()
    {
        _sensor ??= new Dht22(pin, controller, shouldDispose: false);
        if (!_sensor.TryReadTemperature(out var temperature) || !_sensor.TryReadHumidity(out var humidity))
        {
            // The binding tells a timeout from a checksum mismatch by neither; both mean: read again later.
            throw new SensorException($"no valid answer on GPIO {pin} (no response, or a checksum mismatch)");
        }

        Bmx280Sensor.Plausible("temperature", temperature.DegreesCelsius, -40, 80);
        Bmx280Sensor.Plausible("humidity", humidity.Percent, 0, 100);
        return [new("temperature", Math.Round(temperature.DegreesCelsius, 1), "°C"), new("humidity", Math.Round(humidity.Percent, 1), "%")];
    }

    public void Dispose() => _sensor?.Dispose();
}

/// <summary>
/// DS18B20 on the 1-wire bus, from the kernel's w1_therm files (<c>{sysfs}/bus/w1/devices/28-*/w1_slave</c>).
/// Read here rather than through Iot.Device.OneWire because that binding has /sys fixed in it.
/// </summary>
public sealed class Ds18b20Sensor(string sysRoot, string? deviceId) : ISensor
{
    public IReadOnlyList<Reading> Read()
    {
        var devices = Path.Combine(sysRoot, "bus/w1/devices");
        var id = deviceId ?? (Directory.Exists(devices) ? Directory.EnumerateDirectories(devices, "28-*").Select(Path.GetFileName).Order(StringComparer.Ordinal).FirstOrDefault() : null)
            ?? throw new SensorException("no DS18B20 (28-*) on the 1-wire bus");
        var file = Path.Combine(devices, id, "w1_slave");
        if (!File.Exists(file))
        {
            throw new SensorException($"1-wire device {id} is not present");
        }

        // "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES" then "72 01 4b 46 7f ff 0e 10 57 t=23125"
        var lines = File.ReadAllLines(file);
        if (lines.Length < 2 || !lines[0].TrimEnd().EndsWith("YES", StringComparison.Ordinal))
        {
            throw new SensorException($"1-wire device {id}: CRC check failed");
        }

        var at = lines[1].IndexOf("t=", StringComparison.Ordinal);
        if (at < 0 || !int.TryParse(lines[1][(at + 2)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var milli))
        {
            throw new SensorException($"1-wire device {id}: no temperature in its answer");
        }

        // 85 °C is the power-on reset value: the conversion did not run.
        if (milli == 85000)
        {
            throw new SensorException($"1-wire device {id}: power-on reset value 85°C (conversion failed)");
        }

        var celsius = milli / 1000.0;
        Bmx280Sensor.Plausible("temperature", celsius, -55, 125);
        return [new("temperature", celsius, "°C")];
    }

    public void Dispose()
    {
    }
}

/// <summary>
/// A digital input (door switch, button) read through System.Device.Gpio with debounce: a new level
/// counts once it has held for the debounce time across consecutive reads.
/// </summary>
public sealed class GpioInputSensor(GpioController controller, int pin, bool activeLow, TimeSpan debounce, TimeProvider time) : ISensor
{
    private bool _opened;
    private bool? _stable;
    private bool? _candidate;
    private DateTimeOffset _candidateSince;

    public IReadOnlyList<Reading> Read()
    {
        if (!_opened)
        {
            controller.OpenPin(pin, controller.IsPinModeSupported(pin, activeLow ? PinMode.InputPullUp : PinMode.InputPullDown)
                ? (activeLow ? PinMode.InputPullUp : PinMode.InputPullDown)
                : PinMode.Input);
            _opened = true;
        }

        var on = (controller.Read(pin) == PinValue.High) != activeLow;
        var now = time.GetUtcNow();
        if (_stable is null)
        {
            _stable = on;
        }
        else if (on != _stable)
        {
            if (_candidate != on)
            {
                _candidate = on;
                _candidateSince = now;
            }

            if (now - _candidateSince >= debounce)
            {
                _stable = on;
                _candidate = null;
            }
        }
        else
        {
            _candidate = null;
        }

        return [new("state", _stable.Value ? 1 : 0, "state")];
    }

    public void Dispose()
    {
        if (_opened && controller.IsPinOpen(pin))
        {
            controller.ClosePin(pin);
        }
    }
}
