using System.Device.Gpio;
using System.Diagnostics;

namespace EdgeKube.Agent.Tests.Board;

/// <summary>
/// A GPIO driver with a DHT22 on one line, answering at the level of the wire: the host drives the line
/// low for at least 1 ms and releases it (the start pulse); the sensor pulls it low for 80 µs, high for
/// 80 µs, then sends 40 bits, each 50 µs low and then high for 26 µs (a 0) or 70 µs (a 1): humidity × 10,
/// temperature × 10 with the sign in the top bit, and the checksum (the low byte of the sum of the four).
/// The line's level is a function of real time, because the Iot.Device.DHTxx binding times the high
/// pulses with a Stopwatch (more than 30 µs is a 1); a fake clock cannot stand in for that.
/// <para>
/// Two liberties, both for a host that is a test process on a shared machine rather than a board:
/// (1) a DHT22 starts its answer 20-40 µs after the release, but the binding (4.2.0) first waits 30 µs with
/// <c>DelayHelper.DelayMicroseconds(30, allowThreadYield: true)</c>, whose SpinWait gets to
/// <c>Thread.Sleep(1)</c> after about a microsecond of spinning, so it looks at the line about a millisecond
/// later (<see cref="Turnaround"/>), a quarter into the 4-5 ms frame: here the answer starts at the host's
/// first look. (2) The host's thread is preempted now and then mid-frame, for longer than a pulse: here the
/// sensor's clock stands still while the host is away more than <see cref="PauseMicroseconds"/>, so the host
/// keeps its place in the frame. The host's own Stopwatch still counts the gap, so a gap inside a 0 bit's
/// high pulse makes it read as a 1 and the checksum rejects the frame, as on a board;
/// <see cref="LongestZeroPulse"/> says whether that happened, so a test tells such a read from a wrong decode.
/// </para>
/// </summary>
public sealed class SimulatedDht22(int pin) : GpioDriver
{
    /// <summary>The binding's limit: a high pulse longer than this (µs, by its Stopwatch) is a 1.</summary>
    public const double OneAbove = 30;

    /// <summary>Longer than the host takes between two reads, shorter than the shortest pulse (26 µs).</summary>
    public const double PauseMicroseconds = 10;

    private const double ResponseLow = 80, ResponseHigh = 80, BitLow = 50, ZeroHigh = 26, OneHigh = 70;

    private readonly Lock _lock = new();
    private PinMode _mode = PinMode.Input;
    private PinValue _driven = PinValue.High;
    private long? _lowSince;

    // The answer being sent: segment start times (µs after the host's first look) and levels; the last segment lasts.
    private long _release;
    private long _start;
    private long _lastRead;
    private long _riseSeen;
    private long? _zeroRise;
    private bool _waiting;
    private (double Start, PinValue Level)[] _segments = [];
    private int _cursor = -1;

    public double Temperature { get; set; } = 21.0;

    public double Humidity { get; set; } = 50.0;

    /// <summary>False: nothing on the line (unplugged): the pull-up holds it high, the start pulse gets no answer.</summary>
    public bool Present { get; set; } = true;

    /// <summary>Send a checksum that does not match the data (a damaged sensor or a disturbed cable).</summary>
    public bool CorruptChecksum { get; set; }

    /// <summary>Start pulses the host sent (low for at least 1 ms, then released).</summary>
    public int StartPulses { get; private set; }

    /// <summary>Answers the sensor sent.</summary>
    public int Answers { get; private set; }

    /// <summary>
    /// The longest 0 bit of the last answer as the host may have timed it: µs from the read that saw it rise
    /// to the read after the one that saw it fall (the host starts its Stopwatch after the first and stops it
    /// before the last); within <see cref="OneAbove"/> the binding surely took every 0 for a 0.
    /// </summary>
    public double LongestZeroPulse { get; private set; }

    /// <summary>Whether the host read every pulse of the last answer (it stops at the fall of the 40th bit); false when it gave up part way.</summary>
    public bool ReadToTheEnd => _segments.Length > 0 && _cursor >= _segments.Length - 2;

    /// <summary>From the release of the line to the host's first look at it, in the last start (a DHT22 answers after 20-40 µs).</summary>
    public TimeSpan Turnaround { get; private set; }



    /// <summary>The five bytes an answer for <paramref name="humidity"/> and <paramref name="temperature"/> carries.</summary>
    public static byte[] Frame(double humidity, double temperature, bool corrupt = false)
    {
        var h = (int)Math.Round(humidity * 10);
        var t = (int)Math.Round(Math.Abs(temperature) * 10) | (temperature < 0 ? 0x8000 : 0);
        byte[] frame = [(byte)(h >> 8), (byte)h, (byte)(t >> 8), (byte)t, 0];
        frame[4] = (byte)(frame[0] + frame[1] + frame[2] + frame[3] + (corrupt ? 1 : 0));
        return frame;
    }

    protected override int PinCount => 54;

    protected override void OpenPin(int pinNumber)
    {
    }

    protected override void ClosePin(int pinNumber)
    {
    }

    protected override void SetPinMode(int pinNumber, PinMode mode)
    {
        lock (_lock)
        {
            if (pinNumber == pin && _mode == PinMode.Output && mode != PinMode.Output && _driven == PinValue.Low)
            {
                // Released by turning into an input: the pull-up raises the line.
                Release(Stopwatch.GetTimestamp());
            }

            if (pinNumber == pin)
            {
                _mode = mode;
            }
        }
    }

    protected override PinMode GetPinMode(int pinNumber) => pinNumber == pin ? _mode : PinMode.Input;

    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) => true;

    protected override void Write(int pinNumber, PinValue value)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            if (pinNumber != pin || _mode != PinMode.Output)
            {
                return;
            }

            if (value == PinValue.Low && _driven == PinValue.High)
            {
                _lowSince = now;
                _segments = []; // the host holds the line: any answer is over
            }
            else if (value == PinValue.High && _driven == PinValue.Low)
            {
                Release(now);
            }

            _driven = value;
        }
    }

    private void Release(long now)
    {
        if (_lowSince is { } since && Stopwatch.GetElapsedTime(since, now) >= TimeSpan.FromMilliseconds(1))
        {
            StartPulses++;
            if (Present)
            {
                Answer(now);
            }
        }

        _lowSince = null;
    }

    private void Answer(long now)
    {
        var frame = Frame(Humidity, Temperature, CorruptChecksum);
        var segments = new List<(double, PinValue)> { (0, PinValue.Low), (ResponseLow, PinValue.High) };
        var t = ResponseLow + ResponseHigh;
        for (var i = 0; i < 40; i++)
        {
            var one = (frame[i / 8] & (0x80 >> (i % 8))) != 0;
            segments.Add((t, PinValue.Low));
            segments.Add((t + BitLow, PinValue.High));
            t += BitLow + (one ? OneHigh : ZeroHigh);
        }

        segments.Add((t, PinValue.Low));
        segments.Add((t + BitLow, PinValue.High)); // released: idle high
        _segments = [.. segments];
        _release = now;
        _waiting = true;
        _cursor = -1;
        _zeroRise = null;
        LongestZeroPulse = 0;
        Answers++;
    }

    protected override PinValue Read(int pinNumber)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            if (pinNumber != pin)
            {
                return PinValue.Low;
            }

            if (_mode == PinMode.Output)
            {
                return _driven;
            }

            if (_segments.Length == 0)
            {
                return PinValue.High; // the pull-up
            }

            if (_waiting)
            {
                _waiting = false;
                _start = now;
                Turnaround = Stopwatch.GetElapsedTime(_release, now);
            }
            else if (Stopwatch.GetElapsedTime(_lastRead, now).TotalMicroseconds > PauseMicroseconds)
            {
                _start += now - _lastRead; // the host was away: the sensor waited
            }

            _lastRead = now;
            if (_zeroRise is { } rise)
            {
                LongestZeroPulse = Math.Max(LongestZeroPulse, Stopwatch.GetElapsedTime(rise, now).TotalMicroseconds);
                _zeroRise = null;
            }

            var elapsed = Stopwatch.GetElapsedTime(_start, now).TotalMicroseconds;
            var at = _cursor < 0 ? 0 : _cursor;
            while (at + 1 < _segments.Length && _segments[at + 1].Start <= elapsed)
            {
                at++;
            }

            if (at != _cursor && _cursor >= 0)
            {
                var (start, level) = _segments[_cursor];
                var length = _segments[_cursor + 1].Start - start;
                if (level == PinValue.High && length == ZeroHigh)
                {
                    // Bounded by the next read; a last bit that is a 0 only by this one.
                    LongestZeroPulse = Math.Max(LongestZeroPulse, Stopwatch.GetElapsedTime(_riseSeen, now).TotalMicroseconds);
                    _zeroRise = _riseSeen;
                }
            }

            if (at != _cursor && _segments[at].Level == PinValue.High)
            {
                _riseSeen = now;
            }

            _cursor = at;
            return _segments[at].Level;
        }
    }

    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback) =>
        throw new NotSupportedException();

    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback) =>
        throw new NotSupportedException();
}
