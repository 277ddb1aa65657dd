using System.Device.Gpio;
using EdgeKube.Agent.Board.Sensors;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace EdgeKube.Agent.Tests.Board;

/// <summary>
/// The DHT22 through the real Iot.Device.DHTxx binding, on a GPIO driver that answers its start pulse with
/// the sensor's pulse train in real time (<see cref="SimulatedDht22"/>).
/// </summary>
public sealed class Dht22Tests(ITestOutputHelper output)
{
    private const int Pin = 4;

    // The binding hands back its last frame when asked again within half a second (MinTimeBetweenReads' millisecond part).
    private static readonly TimeSpan BetweenReads = TimeSpan.FromMilliseconds(600);

    private static double Value(IReadOnlyList<Reading> readings, string quantity) => readings.Single(r => r.Quantity == quantity).Value;

    /// <summary>
    /// Reads until the host surely timed every 0 bit as a 0 (a thread stalled inside a 0 bit's pulse takes it
    /// for a 1, on a board as here, and the checksum rejects the frame); such a read must decode exactly.
    /// </summary>
    private IReadOnlyList<Reading> ReadInTime(Dht22Sensor sensor, SimulatedDht22 dht)
    {
        var misjudged = new List<double>();
        for (var attempt = 0; attempt < 30; attempt++)
        {
            IReadOnlyList<Reading>? readings = null;
            string? error = null;
            try
            {
                readings = sensor.Read();
            }
            catch (SensorException e)
            {
                error = e.Message;
            }

            output.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"try {attempt + 1}: release to first look {dht.Turnaround.TotalMicroseconds:0} µs, longest 0 bit {dht.LongestZeroPulse:0.0} µs, {(readings is null ? error : "read")}"));
            Assert.True(dht.ReadToTheEnd, "the host stopped reading part way through the frame");
            if (dht.LongestZeroPulse <= SimulatedDht22.OneAbove)
            {
                Assert.True(readings is not null, $"a frame whose every pulse was timed right was refused: {error}");
                return readings;
            }

            // Maybe timed as a 1: refused by the checksum, or (rarely: a second flip in the checksum) not.
            misjudged.Add(dht.LongestZeroPulse);
            Thread.Sleep(BetweenReads);
        }

        Assert.Fail("the host never timed a whole frame right; longest 0 bit per try (µs): " + string.Join(", ", misjudged.Select(l => l.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture))));
        return [];
    }

    [Fact]
    public void The_frame_carries_humidity_temperature_with_its_sign_and_the_checksum()
    {
        // The datasheet's example: 65.2 %RH, 35.1 °C; and -10.1 °C with the sign bit.
        Assert.Equal(new byte[] { 0x02, 0x8C, 0x01, 0x5F, 0xEE }, SimulatedDht22.Frame(65.2, 35.1));
        Assert.Equal(new byte[] { 0x02, 0x8C, 0x80, 0x65, 0x73 }, SimulatedDht22.Frame(65.2, -10.1));
    }

    [Fact]
    public void Temperature_and_humidity_are_read_through_the_binding_from_the_pulse_train()
    {
        // Both frames end in a 1 bit, so every 0 bit has a read after it that bounds how the host timed it.
        Assert.Equal(1, SimulatedDht22.Frame(56.7, 23.4)[4] & 1);
        Assert.Equal(1, SimulatedDht22.Frame(91.0, -5.2)[4] & 1);
        var dht = new SimulatedDht22(Pin) { Temperature = 23.4, Humidity = 56.7 };
        using var controller = new GpioController(dht);
        using var sensor = new Dht22Sensor(controller, Pin);

        var readings = ReadInTime(sensor, dht);
        Assert.Equal(23.4, Value(readings, "temperature"));
        Assert.Equal(56.7, Value(readings, "humidity"));
        Assert.Equal(["°C", "%"], readings.Select(r => r.Unit));
        Assert.True(dht.StartPulses >= 1);

        // Below freezing: the sign bit.
        Thread.Sleep(BetweenReads);
        dht.Temperature = -5.2;
        dht.Humidity = 91.0;
        readings = ReadInTime(sensor, dht);
        Assert.Equal(-5.2, Value(readings, "temperature"));
        Assert.Equal(91.0, Value(readings, "humidity"));
    }

    [Fact]
    public void A_checksum_mismatch_and_no_answer_are_reading_errors()
    {
        var dht = new SimulatedDht22(Pin) { Temperature = 23.4, Humidity = 56.7, CorruptChecksum = true };
        using var controller = new GpioController(dht);
        using var sensor = new Dht22Sensor(controller, Pin);
        var answers = dht.Answers;
        Assert.Contains("no valid answer on GPIO 4", Assert.Throws<SensorException>(() => sensor.Read()).Message);
        Assert.Equal(answers + 1, dht.Answers); // it answered: the frame was refused

        // Unplugged: the start pulse is sent, nothing answers, the binding times out.
        Thread.Sleep(BetweenReads);
        dht.CorruptChecksum = false;
        dht.Present = false;
        var pulses = dht.StartPulses;
        answers = dht.Answers;
        Assert.Throws<SensorException>(() => sensor.Read());
        Assert.Equal(pulses + 1, dht.StartPulses);
        Assert.Equal(answers, dht.Answers);
    }

    [Fact]
    public void The_hub_reports_a_silent_dht22_and_retries_it_with_backoff_until_it_answers()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var dht = new SimulatedDht22(Pin) { Temperature = 19.5, Humidity = 40.0, Present = false };
        using var controller = new GpioController(dht);
        var spec = new SensorSpec("room", SensorKind.Dht22, TimeSpan.FromSeconds(30), null, TimeSpan.FromMinutes(5), () => new Dht22Sensor(controller, Pin));
        var hub = new SensorHub([spec], time, NullLogger<SensorHub>.Instance);
        ISensor? sensor = null;

        Assert.Equal(TimeSpan.FromSeconds(60), hub.Step(spec, ref sensor));
        Assert.Contains("no valid answer", hub.Sent["room"].Error);
        Assert.Empty(hub.Sent["room"].Values);
        Assert.Null(sensor); // closed, opened afresh on the next try
        Assert.Equal(TimeSpan.FromSeconds(120), hub.Step(spec, ref sensor));
        Assert.Equal(2, dht.StartPulses);

        // Plugged back in: the next tries read it. A try the host read late is one more failure, or, when
        // two misread bits cancel out in the checksum, a wrong value the binding accepts (as it would on a
        // board): such a try is taken again after the binding's cache time and the hub's refresh time (so the
        // hub sends the new read even if it is close to the wrong one), and the check below is on a frame the
        // host timed right.
        dht.Present = true;
        for (var i = 0; i < 40 && (hub.Sent["room"].Error is not null || dht.LongestZeroPulse > SimulatedDht22.OneAbove); i++)
        {
            if (hub.Sent["room"].Error is null)
            {
                Thread.Sleep(BetweenReads);
                time.Advance(spec.Refresh);
            }

            hub.Step(spec, ref sensor);
            output.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"try {i + 1}: longest 0 bit {dht.LongestZeroPulse:0.0} µs, {hub.Sent["room"].Error ?? "read"}"));
        }

        Assert.True(dht.LongestZeroPulse <= SimulatedDht22.OneAbove, "the host never timed a whole frame right");
        Assert.Null(hub.Sent["room"].Error);
        Assert.Equal(19.5, Value(hub.Sent["room"].Values, "temperature"));
        Assert.Equal(40.0, Value(hub.Sent["room"].Values, "humidity"));
        sensor?.Dispose();
    }
}
