using System.Device.Gpio;
using System.Text;
using EdgeKube.Agent.Board;
using EdgeKube.Agent.Board.Sensors;
using EdgeKube.Agent.Node;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Board;

/// <summary>The sensors through the real Iot.Device bindings on simulated buses, and the hub's delta, refresh and backoff.</summary>
public sealed class SensorTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly string _sys = Directory.CreateTempSubdirectory("edgekube-sys-").FullName;

    public void Dispose() => Directory.Delete(_sys, recursive: true);

    private static double Value(IReadOnlyList<Reading> readings, string quantity) => readings.Single(r => r.Quantity == quantity).Value;

    [Fact]
    public void Bme280_is_read_through_the_binding_from_its_registers()
    {
        var chip = new SimulatedBme280();
        using var sensor = new Bmx280Sensor(chip, humidity: true);
        var readings = sensor.Read();
        var (t, p, h) = SimulatedBme280.Expected(519888, 415148, 30000);
        Assert.Equal(25.08, t, 0.01); // the datasheet's worked example
        Assert.Equal(t, Value(readings, "temperature"), 0.01);
        Assert.Equal(p, Value(readings, "pressure"), 0.05);
        Assert.Equal(h, Value(readings, "humidity"), 0.2);
        Assert.Equal(["°C", "hPa", "%"], readings.Select(r => r.Unit));

        // The air warms: a new raw temperature gives the new reading.
        chip.SetRaw(540000, 415148, 30000);
        Assert.Equal(SimulatedBme280.Expected(540000, 415148, 30000).T, Value(sensor.Read(), "temperature"), 0.01);

        // BMP280: no humidity.
        using var bmp = new Bmx280Sensor(new SimulatedBme280(bmp280: true), humidity: false);
        Assert.Equal(["temperature", "pressure"], bmp.Read().Select(r => r.Quantity));
    }

    [Fact]
    public void A_wrong_chip_or_garbage_is_an_error_not_a_reading()
    {
        using var wrong = new Bmx280Sensor(new SimulatedBme280(bmp280: true), humidity: true); // a BMP280 where a BME280 was configured
        Assert.ThrowsAny<Exception>(() => wrong.Read());

        var chip = new SimulatedBme280();
        chip.SetRaw(0xFFFFF, 0xFFFFF, 0xFFFF);
        using var garbage = new Bmx280Sensor(chip, humidity: true);
        Assert.Contains("implausible", Assert.Throws<SensorException>(() => garbage.Read()).Message);
    }

    [Fact]
    public void Ina219_voltage_current_and_power_come_from_the_chips_registers()
    {
        var chip = new SimulatedIna219(0.1) { BusVolts = 5.12, Amperes = 0.75 };
        using var sensor = new Ina219Sensor(chip, 0.1, 3.2);
        var readings = sensor.Read();
        Assert.Equal(5.12, Value(readings, "voltage"), 0.004);
        Assert.Equal(0.75, Value(readings, "current"), 0.002);
        Assert.Equal(5.12 * 0.75, Value(readings, "power"), 0.05);
        chip.Amperes = 1.5;
        Assert.Equal(1.5, Value(sensor.Read(), "current"), 0.002);
    }

    [Fact]
    public void Ds18b20_reads_the_w1_files_and_rejects_crc_failures_and_the_reset_value()
    {
        var dir = Path.Combine(_sys, "bus/w1/devices/28-0316a4c2f1ff");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "w1_slave");
        File.WriteAllText(file, "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n");
        using var sensor = new Ds18b20Sensor(_sys, null);
        Assert.Equal(23.125, Value(sensor.Read(), "temperature"));
        File.WriteAllText(file, "72 01 4b 46 7f ff 0e 10 57 : crc=00 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n");
        Assert.Contains("CRC check failed", Assert.Throws<SensorException>(() => sensor.Read()).Message);
        File.WriteAllText(file, "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n");
        Assert.Contains("power-on reset value", Assert.Throws<SensorException>(() => sensor.Read()).Message);
        using var missing = new Ds18b20Sensor(_sys, "28-000000000000");
        Assert.Contains("not present", Assert.Throws<SensorException>(() => missing.Read()).Message);
    }

    [Fact]
    public void A_gpio_input_changes_only_after_the_level_held_for_the_debounce_time()
    {
        var driver = new RecordingGpioDriver(_time);
        using var controller = new GpioController(driver);
        using var door = new GpioInputSensor(controller, 17, activeLow: true, TimeSpan.FromMilliseconds(50), _time);
        driver.SetInput(17, PinValue.High); // pulled up: off
        Assert.Equal(0, Value(door.Read(), "state"));
        Assert.Contains(17, driver.Open);

        // A bounce shorter than the debounce time is ignored.
        driver.SetInput(17, PinValue.Low);
        Assert.Equal(0, Value(door.Read(), "state"));
        _time.Advance(TimeSpan.FromMilliseconds(20));
        driver.SetInput(17, PinValue.High);
        Assert.Equal(0, Value(door.Read(), "state"));

        // A level that holds is taken.
        driver.SetInput(17, PinValue.Low);
        Assert.Equal(0, Value(door.Read(), "state"));
        _time.Advance(TimeSpan.FromMilliseconds(30));
        Assert.Equal(0, Value(door.Read(), "state"));
        _time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(1, Value(door.Read(), "state"));
    }

    [Fact]
    public void The_hub_sends_changes_beyond_the_delta_and_a_periodic_refresh_and_backs_off_a_failing_sensor()
    {
        var chip = new SimulatedBme280();
        var opened = 0;
        var spec = new SensorSpec("greenhouse", SensorKind.Bme280, TimeSpan.FromSeconds(10), 0.5, TimeSpan.FromMinutes(5), () =>
        {
            opened++;
            return new Bmx280Sensor(chip, humidity: true);
        });
        var hub = new SensorHub([spec], _time, NullLogger<SensorHub>.Instance);
        ISensor? sensor = null;
        Assert.Equal(TimeSpan.FromSeconds(10), hub.Step(spec, ref sensor));
        var first = hub.Sent["greenhouse"];
        Assert.Null(first.Error);

        // A small change is not sent; a refresh is due after 5 minutes; a change beyond the delta is sent at once.
        chip.SetRaw(519888 + 200, 415148, 30000); // about +0.1 °C
        _time.Advance(TimeSpan.FromSeconds(10));
        hub.Step(spec, ref sensor);
        Assert.Same(first, hub.Sent["greenhouse"]);
        _time.Advance(TimeSpan.FromMinutes(5));
        hub.Step(spec, ref sensor);
        Assert.NotSame(first, hub.Sent["greenhouse"]);
        var refreshed = hub.Sent["greenhouse"];
        chip.SetRaw(540000, 415148, 30000);
        _time.Advance(TimeSpan.FromSeconds(10));
        hub.Step(spec, ref sensor);
        Assert.True(Value(hub.Sent["greenhouse"].Values, "temperature") > Value(refreshed.Values, "temperature") + 1);

        // Unplugged: an error state is sent, the retries back off, the sensor is opened afresh when it returns.
        chip.Unplugged = true;
        Assert.Equal(TimeSpan.FromSeconds(20), hub.Step(spec, ref sensor));
        Assert.Contains("Remote I/O error", hub.Sent["greenhouse"].Error);
        Assert.Null(sensor);
        Assert.Equal(TimeSpan.FromSeconds(40), hub.Step(spec, ref sensor));
        for (var i = 0; i < 10; i++)
        {
            hub.Step(spec, ref sensor);
        }

        Assert.Equal(SensorHub.MaxBackoff, hub.Step(spec, ref sensor));
        var node = NewNode();
        hub.Decorate(node);
        // A passing failure: the values go (they are not current), the label stays (the sensor is still there).
        Assert.Equal("bme280", node.Metadata.Labels["sensors.edgekube.io/greenhouse"]);
        Assert.DoesNotContain("edgekube.io/greenhouse.temperature", node.Metadata.Annotations.Keys);
        Assert.Contains("Remote I/O error", node.Metadata.Annotations["edgekube.io/greenhouse.error"]);
        var condition = node.Status.Conditions.Single(c => c.Type == "SensorsReady");
        Assert.Equal(("False", "SensorFailed"), (condition.Status, condition.Reason));
        Assert.StartsWith("greenhouse (bme280): ", condition.Message);

        // Failing for its absentAfter (5 minutes by default) since the last good read: absent, the label goes.
        _time.Advance(SensorHub.DefaultAbsentAfter - TimeSpan.FromSeconds(1));
        hub.Step(spec, ref sensor);
        node = NewNode();
        hub.Decorate(node);
        Assert.Contains("sensors.edgekube.io/greenhouse", node.Metadata.Labels.Keys);
        _time.Advance(TimeSpan.FromSeconds(1));
        hub.Step(spec, ref sensor);
        Assert.True(hub.Sent["greenhouse"].Absent);
        node = NewNode();
        hub.Decorate(node);
        Assert.DoesNotContain("sensors.edgekube.io/greenhouse", node.Metadata.Labels.Keys);
        Assert.Contains("Remote I/O error", node.Metadata.Annotations["edgekube.io/greenhouse.error"]);
        Assert.Contains("\"absent\":true", node.Metadata.Annotations[SensorHub.StructuredAnnotation]);

        chip.Unplugged = false;
        var opens = opened;
        Assert.Equal(TimeSpan.FromSeconds(10), hub.Step(spec, ref sensor));
        Assert.Equal(opens + 1, opened);
        Assert.Null(hub.Sent["greenhouse"].Error);
        Assert.False(hub.Sent["greenhouse"].Absent);
        node = NewNode();
        hub.Decorate(node);
        Assert.Equal("bme280", node.Metadata.Labels["sensors.edgekube.io/greenhouse"]);
        Assert.Matches(@"^\d+\.\d+ °C$", node.Metadata.Annotations["edgekube.io/greenhouse.temperature"]);
        Assert.Matches(@"^\d+\.\d+ hPa$", node.Metadata.Annotations["edgekube.io/greenhouse.pressure"]);
        Assert.Contains("\"name\":\"greenhouse\",\"type\":\"bme280\",\"readings\":[{\"quantity\":\"temperature\"", node.Metadata.Annotations[SensorHub.StructuredAnnotation]);

        var metrics = new StringBuilder();
        hub.WriteMetrics(metrics);
        Assert.Contains("edgekube_sensor_value{sensor=\"greenhouse\",type=\"bme280\",quantity=\"pressure\",unit=\"hPa\"}", metrics.ToString());
        Assert.Contains("edgekube_sensor_up{sensor=\"greenhouse\",type=\"bme280\"} 1", metrics.ToString());
        Assert.Contains("edgekube_sensor_errors_total{sensor=\"greenhouse\",type=\"bme280\"} 15", metrics.ToString());
    }

    private static V1Node NewNode() => new() { Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string>() }, Status = new V1NodeStatus { Conditions = [] } };

    [Fact]
    public void Every_configured_sensor_is_labelled_from_the_start_and_the_first_report_waits_for_a_first_read_of_each()
    {
        var chip = new SimulatedBme280 { Unplugged = true };
        var door = new RecordingGpioDriver(_time);
        using var controller = new GpioController(door);
        var air = new SensorSpec("air", SensorKind.Bme280, TimeSpan.FromSeconds(1), null, TimeSpan.FromMinutes(5), () => new Bmx280Sensor(chip, humidity: true)) { AbsentAfter = TimeSpan.FromSeconds(3) };
        var button = new SensorSpec("door", SensorKind.GpioInput, TimeSpan.FromMilliseconds(20), null, TimeSpan.FromMinutes(5), () => new GpioInputSensor(controller, 17, false, TimeSpan.Zero, _time));
        var hub = new SensorHub([air, button], _time, NullLogger<SensorHub>.Instance);

        // Not read yet: both present (the label does not wait for the first read), no values.
        var node = NewNode();
        hub.Decorate(node);
        Assert.Equal("bme280", node.Metadata.Labels["sensors.edgekube.io/air"]);
        Assert.Equal("gpio-input", node.Metadata.Labels["sensors.edgekube.io/door"]);
        Assert.False(hub.FirstRound.IsCompleted);

        ISensor? airSensor = null, doorSensor = null;
        hub.Step(air, ref airSensor);
        Assert.False(hub.FirstRound.IsCompleted);
        hub.Step(button, ref doorSensor);
        Assert.True(hub.FirstRound.IsCompleted);

        // A sensor that never read counts its failure from the start.
        _time.Advance(TimeSpan.FromSeconds(3));
        hub.Step(air, ref airSensor);
        node = NewNode();
        hub.Decorate(node);
        Assert.False(node.Metadata.Labels.ContainsKey("sensors.edgekube.io/air"));
        Assert.Equal("gpio-input", node.Metadata.Labels["sensors.edgekube.io/door"]);
        Assert.Equal("off", node.Metadata.Annotations["edgekube.io/door.state"]);
        doorSensor?.Dispose();
    }

    [Fact]
    public void The_board_config_is_read_from_yaml_and_bad_settings_are_named()
    {
        var path = Path.Combine(_sys, "agent.yaml");
        File.WriteAllText(path, """
            nodeName: pi
            board:
              thermal: {throttleCelsius: 70}
              sensors:
              - {name: greenhouse, type: bme280, bus: 1, address: 0x76, interval: 30s, delta: 0.2}
              - {name: door, type: gpio-input, pin: 17, debounce: 50ms, activeLow: true}
              - {name: probe, type: ds18b20, refresh: 10m, absentAfter: 1h30m}
              leds: {red: 5, amber: 6, green: 13}
              devices:
              - {resource: edgekube.io/gpio, paths: [/dev/gpiochip0]}
            """);
        var config = EdgeKube.Agent.Hosting.JoinConfig.Load(path);
        var board = config.Board!;
        Assert.Empty(board.Validate());
        Assert.Equal(0x76, board.Sensors![0].Address);
        Assert.Equal(TimeSpan.FromSeconds(30), board.Sensors[0].Interval);
        Assert.Equal(TimeSpan.FromMilliseconds(50), board.Sensors[1].Debounce);
        Assert.Equal(TimeSpan.FromMinutes(10), board.Sensors[2].Refresh);
        Assert.Equal(TimeSpan.FromMinutes(90), board.Sensors[2].AbsentAfter);
        Assert.Equal(new ThermalSettings("thermal_zone0", 70, 65), board.ThermalSettings());

        var bad = new BoardConfig
        {
            Sensors = [new() { Name = "Bad Name", Type = "bme280" }, new() { Name = "x", Type = "sht31" }, new() { Name = "door", Type = "gpio-input", AbsentAfter = TimeSpan.Zero }],
            Devices = [new() { Resource = "gpio", Paths = ["dev/gpiochip0"] }],
        };
        var errors = bad.Validate();
        Assert.Contains(errors, e => e.StartsWith("board.sensors[0].name: \"Bad Name\"", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.sensors[0].address:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.sensors[1].type: \"sht31\" is not one of", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.sensors[2].pin:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.sensors[2].absentAfter: must be positive", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.devices[0].resource:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("board.devices[0].paths:", StringComparison.Ordinal));

        File.WriteAllText(path, "board:\n  sensors:\n  - {name: a, type: bme280, adress: 0x76}\n");
        Assert.Contains("unknown setting", Assert.Throws<EdgeKube.Agent.Hosting.InvalidConfigException>(() => EdgeKube.Agent.Hosting.JoinConfig.Load(path)).Message);
    }
}
