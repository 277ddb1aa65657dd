using System.Device.Gpio;
using System.Globalization;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Board.Leds;

/// <summary>What the LED board shows, most severe first (the first that applies wins).</summary>
public enum BoardState
{
    /// <summary>containerd unreachable or an agent fault: red fast blink (4 Hz).</summary>
    Fault,

    /// <summary>A pod in CrashLoopBackOff or ImagePullBackOff, or a pressure, thermal or power condition: red steady.</summary>
    Degraded,

    /// <summary>Lost the master but running its pods: amber steady, green steady.</summary>
    Disconnected,

    /// <summary>Starting, not yet connected to the master: amber slow blink (1 Hz).</summary>
    Starting,

    /// <summary>Pods starting or images pulling: green slow blink (1 Hz).</summary>
    PodsStarting,

    /// <summary>Connected, Ready, all pods running: green steady.</summary>
    Running,
}

/// <summary>
/// A pattern: per LED, which of the eight 125 ms slots of each second it is lit in (bit 7 = first slot).
/// </summary>
public sealed record LedPattern(byte Red, byte Amber, byte Green)
{
    public const int SlotsPerCycle = 8;
    public static readonly TimeSpan Slot = TimeSpan.FromMilliseconds(125);

    /// <summary>Identify: all three together at 2 Hz, a pattern no state uses.</summary>
    public static readonly LedPattern Identify = new(0b1100_1100, 0b1100_1100, 0b1100_1100);

    public static LedPattern For(BoardState state) => state switch
    {
        BoardState.Fault => new(0b1010_1010, 0, 0),
        BoardState.Degraded => new(0xFF, 0, 0),
        BoardState.Disconnected => new(0, 0xFF, 0xFF),
        BoardState.Starting => new(0, 0b1111_0000, 0),
        BoardState.PodsStarting => new(0, 0, 0b1111_0000),
        _ => new(0, 0, 0xFF),
    };

    public (bool Red, bool Amber, bool Green) At(int slot)
    {
        var bit = 1 << (SlotsPerCycle - 1 - (slot % SlotsPerCycle));
        return ((Red & bit) != 0, (Amber & bit) != 0, (Green & bit) != 0);
    }
}

/// <summary>The facts the board state comes from.</summary>
public sealed record BoardInputs(bool RuntimeHealthy, bool HasBroker, bool EverConnected, bool Connected, IReadOnlyList<V1NodeCondition> Conditions, IReadOnlyList<V1PodStatus> Pods)
{
    private static readonly string[] BadConditions = ["MemoryPressure", "DiskPressure", "PIDPressure", "ThermalThrottling", "UnderVoltage"];

    public BoardState Decide()
    {
        if (!RuntimeHealthy)
        {
            return BoardState.Fault;
        }

        var waiting = Pods.SelectMany(p => (p.ContainerStatuses ?? []).Concat(p.InitContainerStatuses ?? [])).Select(c => c.State?.Waiting?.Reason).ToList();
        if (waiting.Any(r => r is "CrashLoopBackOff" or "ImagePullBackOff" or "ErrImagePull" or "CreateContainerConfigError" or "CreateContainerError" or "RunContainerError")
            || Pods.Any(p => p.Phase == "Failed")
            || Conditions.Any(c => BadConditions.Contains(c.Type) && c.Status == "True"))
        {
            return BoardState.Degraded;
        }

        if (HasBroker && EverConnected && !Connected)
        {
            return BoardState.Disconnected;
        }

        if (HasBroker && !Connected)
        {
            return BoardState.Starting;
        }

        if (Pods.Any(p => p.Phase == "Pending") || waiting.Any(r => r is not null))
        {
            return BoardState.PodsStarting;
        }

        return BoardState.Running;
    }
}

/// <summary>Where the LEDs are: GPIO pins or kernel LED class entries.</summary>
public interface ILedOutput : IDisposable
{
    void Set(bool red, bool amber, bool green);
}

/// <summary>Plain LEDs on GPIO pins through System.Device.Gpio, active high or low; a missing colour is skipped.</summary>
public sealed class GpioLeds : ILedOutput
{
    private readonly GpioController _controller;
    private readonly int?[] _pins;
    private readonly bool _activeLow;

    public GpioLeds(GpioController controller, int? red, int? amber, int? green, bool activeLow)
    {
        _controller = controller;
        _pins = [red, amber, green];
        _activeLow = activeLow;
        foreach (var pin in _pins.OfType<int>())
        {
            _controller.OpenPin(pin, PinMode.Output, activeLow ? PinValue.High : PinValue.Low);
        }
    }

    public void Set(bool red, bool amber, bool green)
    {
        bool[] on = [red, amber, green];
        for (var i = 0; i < 3; i++)
        {
            if (_pins[i] is { } pin)
            {
                _controller.Write(pin, on[i] != _activeLow ? PinValue.High : PinValue.Low);
            }
        }
    }

    public void Dispose()
    {
        Set(false, false, false);
        foreach (var pin in _pins.OfType<int>())
        {
            _controller.ClosePin(pin);
        }
    }
}

/// <summary>
/// The board's own LEDs through the kernel's LED class (<c>{sysfs}/class/leds/{name}/brightness</c>, trigger
/// set to none), as Iot.Device.BoardLed drives them; written here because that binding has /sys fixed in it.
/// The first LED shows green, the second red or amber.
/// </summary>
public sealed class ClassLeds : ILedOutput
{
    private readonly string[] _dirs;
    private readonly string?[] _triggers;

    public ClassLeds(string sysRoot, IReadOnlyList<string> names)
    {
        _dirs = [.. names.Take(2).Select(n => Path.Combine(sysRoot, "class/leds", n))];
        _triggers = new string?[_dirs.Length];
        for (var i = 0; i < _dirs.Length; i++)
        {
            _triggers[i] = CurrentTrigger(_dirs[i]);
            File.WriteAllText(Path.Combine(_dirs[i], "trigger"), "none");
        }
    }

    public void Set(bool red, bool amber, bool green)
    {
        bool[] on = [green, red || amber];
        for (var i = 0; i < _dirs.Length; i++)
        {
            File.WriteAllText(Path.Combine(_dirs[i], "brightness"), on[i] ? "1" : "0");
        }
    }

    public void Dispose()
    {
        // Give the LEDs back to the kernel's triggers (heartbeat, mmc activity) they had.
        for (var i = 0; i < _dirs.Length; i++)
        {
            try
            {
                File.WriteAllText(Path.Combine(_dirs[i], "trigger"), _triggers[i] ?? "none");
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The selected trigger: the word in [brackets] in the trigger file.</summary>
    private static string? CurrentTrigger(string dir)
    {
        var text = File.Exists(Path.Combine(dir, "trigger")) ? File.ReadAllText(Path.Combine(dir, "trigger")) : string.Empty;
        var start = text.IndexOf('[', StringComparison.Ordinal);
        var end = text.IndexOf(']', StringComparison.Ordinal);
        return start >= 0 && end > start ? text[(start + 1)..end] : null;
    }
}

/// <summary>
/// The LED status board: every 125 ms slot it asks for the current inputs, decides the state (the most
/// severe wins; identify overrides for its time) and writes the pattern's slot, only when a LED changes.
/// <see cref="Step"/> is the whole machine, so tests step it without waiting.
/// </summary>
public sealed partial class LedBoard(ILedOutput output, Func<BoardInputs> inputs, TimeProvider time, ILogger<LedBoard> logger) : IDisposable
{
    private int _slot;
    private (bool, bool, bool)? _lit;

    // UTC ticks: set from the MQTT thread, read by the LED loop (a long is read and written whole).
    private long _identifyUntil = DateTimeOffset.MinValue.UtcTicks;

    public BoardState State { get; private set; } = BoardState.Starting;

    public bool Identifying => time.GetUtcNow().UtcTicks < Interlocked.Read(ref _identifyUntil);

    /// <summary>Flash the identify pattern for <paramref name="duration"/> from now (again from now when one runs); zero or less stops it.</summary>
    public void Identify(TimeSpan duration)
    {
        var now = time.GetUtcNow();
        if (duration <= TimeSpan.Zero)
        {
            var was = Identifying;
            Interlocked.Exchange(ref _identifyUntil, now.UtcTicks);
            if (was)
            {
                LogIdentifyStopped();
            }

            return;
        }

        // The pattern starts at its first slot, so every identify looks the same from its start.
        _slot = 0;
        Interlocked.Exchange(ref _identifyUntil, (now + duration).UtcTicks);
        LogIdentify(duration.TotalSeconds.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>One slot: decide, then light the LEDs for this slot of the pattern.</summary>
    public void Step()
    {
        BoardState state;
        try
        {
            state = inputs().Decide();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            state = BoardState.Fault; // the agent itself is in trouble
        }

        if (state != State)
        {
            LogState(State, state);
            State = state;
        }

        var lit = (Identifying ? LedPattern.Identify : LedPattern.For(state)).At(_slot);
        _slot = (_slot + 1) % LedPattern.SlotsPerCycle;
        if (lit != _lit)
        {
            try
            {
                output.Set(lit.Red, lit.Amber, lit.Green);
                _lit = lit;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                LogWriteFailed(e.Message);
            }
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Step();
            try
            {
                await Task.Delay(LedPattern.Slot, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public void Dispose() => output.Dispose();

    [LoggerMessage(EventId = 1400, Level = LogLevel.Information, Message = "LED board: {From} -> {To}")]
    private partial void LogState(BoardState from, BoardState to);

    [LoggerMessage(EventId = 1401, Level = LogLevel.Information, Message = "LED board: identify for {Seconds} s")]
    private partial void LogIdentify(string seconds);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Information, Message = "LED board: identify stopped")]
    private partial void LogIdentifyStopped();

    [LoggerMessage(EventId = 1402, Level = LogLevel.Warning, Message = "LED board: cannot drive the LEDs: {Error}")]
    private partial void LogWriteFailed(string error);
}
