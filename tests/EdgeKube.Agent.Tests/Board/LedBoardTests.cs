using System.Device.Gpio;
using System.Text;
using System.Text.Json;
using EdgeKube.Agent.Board.Leds;
using EdgeKube.Agent.Mqtt;
using EdgeKube.Protocol;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Agent.Tests.Board;

/// <summary>The LED board stepped slot by slot on a recording GPIO driver: the pin levels over time are the pattern.</summary>
public sealed class LedBoardTests
{
    private const int Red = 5, Amber = 6, Green = 13;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static readonly V1PodStatus RunningPod = new() { Phase = "Running", ContainerStatuses = [new V1ContainerStatus { Name = "app", State = new V1ContainerState { Running = new V1ContainerStateRunning() } }] };

    private static BoardInputs Healthy(params V1PodStatus[] pods) => new(true, true, true, true, [], pods.Length == 0 ? [RunningPod] : pods);

    /// <summary>Steps one full second and returns, per slot, which LEDs were lit ("R", "A", "G" or "-").</summary>
    private static string Second(LedBoard board, RecordingGpioDriver driver)
    {
        var slots = new List<string>();
        for (var i = 0; i < LedPattern.SlotsPerCycle; i++)
        {
            board.Step();
            slots.Add((driver.Level(Red) == PinValue.High ? "R" : "") + (driver.Level(Amber) == PinValue.High ? "A" : "") + (driver.Level(Green) == PinValue.High ? "G" : "") is { Length: > 0 } s ? s : "-");
        }

        return string.Join(' ', slots);
    }

    [Fact]
    public void Each_state_has_its_pattern_and_the_most_severe_wins()
    {
        var driver = new RecordingGpioDriver(_time);
        using var controller = new GpioController(driver);
        var inputs = new BoardInputs(true, true, false, false, [], []);
        using var board = new LedBoard(new GpioLeds(controller, Red, Amber, Green, activeLow: false), () => inputs, _time, NullLogger<LedBoard>.Instance);

        Assert.Equal("A A A A - - - -", Second(board, driver)); // starting, connecting: amber 1 Hz
        Assert.Equal(BoardState.Starting, board.State);

        inputs = Healthy(new V1PodStatus { Phase = "Pending", ContainerStatuses = [new V1ContainerStatus { Name = "app", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } } }] });
        Assert.Equal("G G G G - - - -", Second(board, driver)); // pods starting: green 1 Hz

        inputs = Healthy();
        Assert.Equal("G G G G G G G G", Second(board, driver)); // all running: green steady

        inputs = Healthy() with { Connected = false };
        Assert.Equal("AG AG AG AG AG AG AG AG", Second(board, driver)); // lost the master, pods running

        // Degraded beats disconnected: a crash-looping pod, or a board condition.
        inputs = Healthy(RunningPod, new V1PodStatus { Phase = "Running", ContainerStatuses = [new V1ContainerStatus { Name = "bad", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "CrashLoopBackOff" } } }] }) with { Connected = false };
        Assert.Equal("R R R R R R R R", Second(board, driver));
        inputs = Healthy() with { Conditions = [new V1NodeCondition { Type = "ThermalThrottling", Status = "True" }] };
        Assert.Equal("R R R R R R R R", Second(board, driver));
        Assert.Equal(BoardState.Degraded, board.State);

        // The runtime unreachable beats everything: red 4 Hz.
        inputs = inputs with { RuntimeHealthy = false };
        Assert.Equal("R - R - R - R -", Second(board, driver));

        // A steady pattern writes the pins once, not every slot.
        inputs = Healthy();
        Second(board, driver);
        var writes = driver.Writes.Count;
        Second(board, driver);
        Assert.Equal(writes, driver.Writes.Count);
    }

    [Fact]
    public void Identify_flashes_all_leds_for_its_time_then_the_state_returns()
    {
        var driver = new RecordingGpioDriver(_time);
        using var controller = new GpioController(driver);
        using var board = new LedBoard(new GpioLeds(controller, Red, Amber, Green, activeLow: true), () => Healthy(), _time, NullLogger<LedBoard>.Instance);
        board.Identify(TimeSpan.FromSeconds(30));
        var lit = new List<bool>();
        for (var i = 0; i < 8; i++)
        {
            board.Step();
            // Active low: a lit LED is a low pin.
            Assert.Equal(driver.Level(Red), driver.Level(Green));
            Assert.Equal(driver.Level(Red), driver.Level(Amber));
            lit.Add(driver.Level(Green) == PinValue.Low);
            _time.Advance(LedPattern.Slot);
        }

        Assert.Equal([true, true, false, false, true, true, false, false], lit);
        _time.Advance(TimeSpan.FromSeconds(30));
        board.Step();
        Assert.False(board.Identifying);
        Assert.Equal((PinValue.High, PinValue.High, PinValue.Low), (driver.Level(Red), driver.Level(Amber), driver.Level(Green)));
    }

    /// <summary>The writes to the green pin from write number <paramref name="from"/> on, as (time, lit).</summary>
    private static List<(DateTimeOffset Time, bool Lit)> GreenWrites(RecordingGpioDriver driver, int from) =>
        [.. driver.Writes.Skip(from).Where(w => w.Pin == Green).Select(w => (w.Time, w.Value == PinValue.High))];

    private static MqttMessage IdentifyMessage(Topics topics, string duration, double seconds, DateTimeOffset until) =>
        new(topics.Identify("pi"), JsonSerializer.SerializeToUtf8Bytes(new IdentifyRequest(duration, seconds, until), ProtocolJson.Default.IdentifyRequest), Retained: true);

    [Fact]
    public async Task Identify_requests_from_the_nodes_topic_start_restart_and_stop_the_pattern_on_fake_time()
    {
        var driver = new RecordingGpioDriver(_time);
        using var controller = new GpioController(driver);
        using var board = new LedBoard(new GpioLeds(controller, Red, Amber, Green, activeLow: false), () => Healthy(), _time, NullLogger<LedBoard>.Instance);
        var topics = new Topics();
        var listener = new IdentifyListener(topics, "pi", () => board, NullLogger<IdentifyListener>.Instance);

        // Running: green steady.
        Assert.Equal("G G G G G G G G", Second(board, driver));

        // Another node's identify, or garbage, changes nothing.
        await listener.HandleAsync(new MqttMessage(topics.Identify("other"), Encoding.UTF8.GetBytes("{\"duration\":\"30s\",\"seconds\":30,\"until\":\"2026-01-01T00:00:30Z\"}"), true));
        await listener.HandleAsync(new MqttMessage(topics.Identify("pi"), Encoding.UTF8.GetBytes("not json"), true));
        await listener.HandleAsync(IdentifyMessage(topics, "30s", -1, _time.GetUtcNow()));
        Assert.False(board.Identifying);

        // 30s: all three together at 2 Hz, slot by slot on fake time, for 30 s.
        var first = IdentifyMessage(topics, "30s", 30, _time.GetUtcNow().AddSeconds(30));
        await listener.HandleAsync(first);
        var start = _time.GetUtcNow();
        var before = driver.Writes.Count;
        for (var i = 0; i < 8 * 10; i++)
        {
            board.Step();
            Assert.Equal(driver.Level(Green), driver.Level(Red));
            Assert.Equal(driver.Level(Green), driver.Level(Amber));
            _time.Advance(LedPattern.Slot);
        }

        // The pins are written when the pattern changes, every 250 ms: on at 0, off at 250, on at 500, ...
        var changes = GreenWrites(driver, before);
        Assert.Equal(40, changes.Count);
        Assert.All(changes.Select((c, i) => (c, i)), x => Assert.Equal((x.i % 2 == 0, start + (x.i * 2 * LedPattern.Slot)), (x.c.Lit, x.c.Time)));

        // The same request again (a reconnect delivers the retained message anew) leaves it running to its end.
        _time.Advance(TimeSpan.FromSeconds(15));
        await listener.HandleAsync(first);
        _time.Advance(TimeSpan.FromSeconds(5));
        board.Step();
        Assert.False(board.Identifying);
        Assert.Equal("G G G G G G G G", Second(board, driver));

        // A new value (kubectl annotate --overwrite) starts afresh from its first slot.
        await listener.HandleAsync(IdentifyMessage(topics, "2m", 120, _time.GetUtcNow().AddMinutes(2)));
        Assert.Equal("RAG RAG - - RAG RAG - -", Second(board, driver));
        _time.Advance(TimeSpan.FromSeconds(100));
        Assert.True(board.Identifying);
        await listener.HandleAsync(IdentifyMessage(topics, "45s", 45, _time.GetUtcNow().AddSeconds(45)));
        _time.Advance(TimeSpan.FromSeconds(44));
        Assert.True(board.Identifying); // 144 s after the 2m one began: the new one counts from its own start

        // The annotation removed: the master clears the topic, the state's pattern is back at once.
        await listener.HandleAsync(new MqttMessage(topics.Identify("pi"), Array.Empty<byte>(), true));
        Assert.False(board.Identifying);
        Assert.Equal("G G G G G G G G", Second(board, driver));
    }

    [Fact]
    public async Task Identify_without_leds_is_a_log_line_not_a_fault()
    {
        var topics = new Topics();
        var listener = new IdentifyListener(topics, "pi", () => null, NullLogger<IdentifyListener>.Instance);
        await listener.HandleAsync(IdentifyMessage(topics, "30s", 30, _time.GetUtcNow().AddSeconds(30)));
        await listener.HandleAsync(new MqttMessage(topics.Identify("pi"), Array.Empty<byte>(), true));
    }
}
