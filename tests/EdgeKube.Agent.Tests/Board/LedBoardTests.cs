using System.Device.Gpio;
using EdgeKube.Agent.Board.Leds;
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
}
