using System.Device.Gpio;
using System.Device.I2c;
using System.Globalization;
using EdgeKube.Agent.Board.Sensors;
using EdgeKube.Agent.Node;
using k8s.Models;

namespace EdgeKube.Agent.Board;

/// <summary>
/// The board's buses, opened only when something configured needs them: I2C devices by bus and address,
/// and one GPIO controller shared by inputs and LEDs. Tests hand in simulated ones.
/// </summary>
public sealed class BoardBuses(Func<int, int, I2cDevice> openI2c, Func<GpioController> openGpio) : IDisposable
{
    private GpioController? _gpio;

    /// <summary>The real buses: /dev/i2c-N, and the GPIO chip through libgpiod when present (else sysfs).</summary>
    public static BoardBuses Real(int? gpioChip) => new(
        (bus, address) => I2cDevice.Create(new I2cConnectionSettings(bus, address)),
        () => gpioChip is { } chip ? new GpioController(new System.Device.Gpio.Drivers.LibGpiodDriver(chip)) : new GpioController());

    public I2cDevice I2c(int bus, int address) => openI2c(bus, address);

    public GpioController Gpio => _gpio ??= openGpio();

    public void Dispose() => _gpio?.Dispose();
}

/// <summary>Builds the sensors of the config.</summary>
public static class SensorFactory
{
    public static IReadOnlyList<SensorSpec> Create(BoardConfig config, BoardBuses buses, HostReader host, TimeProvider time) =>
        [.. (config.Sensors ?? []).Select(s => Create(s, config, buses, host, time))];

    private static SensorSpec Create(SensorConfig s, BoardConfig config, BoardBuses buses, HostReader host, TimeProvider time)
    {
        var kind = SensorKinds.Parse(s.Type)!.Value;
        var interval = s.Interval ?? (kind == SensorKind.GpioInput ? TimeSpan.FromMilliseconds(20) : TimeSpan.FromSeconds(kind == SensorKind.Dht22 ? 30 : 10));
        Func<ISensor> open = kind switch
        {
            SensorKind.CpuTemperature => () => new CpuTemperatureSensor(host, config.ThermalSettings().Zone),
            SensorKind.Bme280 => () => new Bmx280Sensor(buses.I2c(s.Bus ?? 1, s.Address!.Value), humidity: true),
            SensorKind.Bmp280 => () => new Bmx280Sensor(buses.I2c(s.Bus ?? 1, s.Address!.Value), humidity: false),
            SensorKind.Ina219 => () => new Ina219Sensor(buses.I2c(s.Bus ?? 1, s.Address!.Value), s.ShuntOhms ?? 0.1, s.MaxCurrent ?? 3.2),
            SensorKind.Ds18b20 => () => new Ds18b20Sensor(host.SysRoot, s.Device),
            SensorKind.Dht22 => () => new Dht22Sensor(buses.Gpio, s.Pin!.Value),
            SensorKind.GpioInput => () => new GpioInputSensor(buses.Gpio, s.Pin!.Value, s.ActiveLow ?? false, s.Debounce ?? TimeSpan.FromMilliseconds(50), time),
            _ => throw new ArgumentOutOfRangeException(nameof(s)),
        };
        return new SensorSpec(s.Name!, kind, interval, s.Delta, s.Refresh ?? TimeSpan.FromMinutes(5), open) { AbsentAfter = s.AbsentAfter ?? SensorHub.DefaultAbsentAfter };
    }
}

/// <summary>
/// Device-plugin style extended resources (<c>edgekube.io/gpio</c>, <c>edgekube.io/i2c</c>): in the node's
/// capacity and allocatable when their device nodes exist, and the device nodes a pod gets when it asks for one.
/// </summary>
public sealed class DeviceResources(IReadOnlyList<DeviceResourceConfig> resources) : INodeDecorator
{
    /// <summary>The defaults when the config names none: the first GPIO chip and I2C bus 1, as on a Raspberry Pi.</summary>
    public static readonly IReadOnlyList<DeviceResourceConfig> Defaults =
    [
        new() { Resource = "edgekube.io/gpio", Paths = ["/dev/gpiochip0"] },
        new() { Resource = "edgekube.io/i2c", Paths = ["/dev/i2c-1"] },
    ];

    /// <summary>"HOST[:CONTAINER]": the device node on the host and where the container sees it (the same path by default).</summary>
    public static (string Host, string Container) Split(string path) =>
        path.IndexOf(':', StringComparison.Ordinal) is var i and > 0 ? (path[..i], path[(i + 1)..]) : (path, path);

    public static DeviceResources From(BoardConfig config) => new(config.Devices is { Count: > 0 } d ? d : Defaults);

    /// <summary>Device paths by resource name, for those whose device nodes all exist.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Present() =>
        resources.Where(r => r.Paths!.All(p => Path.Exists(Split(p).Host))).ToDictionary(r => r.Resource!, r => (IReadOnlyList<string>)r.Paths!, StringComparer.Ordinal);

    public void Decorate(V1Node node)
    {
        var present = Present();
        foreach (var r in resources.Where(r => present.ContainsKey(r.Resource!)))
        {
            var count = new ResourceQuantity((r.Capacity ?? 1).ToString(CultureInfo.InvariantCulture));
            node.Status.Capacity[r.Resource!] = count;
            node.Status.Allocatable[r.Resource!] = count;
        }
    }
}
