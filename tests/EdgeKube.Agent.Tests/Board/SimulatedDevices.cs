using System.Buffers.Binary;
using System.Device.Gpio;
using System.Device.I2c;

namespace EdgeKube.Agent.Tests.Board;

/// <summary>
/// A BME280 (or BMP280) at the register level: chip id, the datasheet's calibration words, the
/// ctrl/status registers and the raw ADC values, with the chip's auto-incrementing register pointer.
/// </summary>
public sealed class SimulatedBme280 : I2cDevice
{
    private readonly byte[] _registers = new byte[256];
    private byte _pointer;

    // The Bosch datasheet's worked example (section 8.2 / 4.2.3) plus humidity words of a real part.
    public const ushort T1 = 27504;
    public const short T2 = 26435, T3 = -1000;
    public const ushort P1 = 36477;
    public const short P2 = -10685, P3 = 3024, P4 = 2855, P5 = 140, P6 = -7, P7 = 15500, P8 = -14600, P9 = 6000;
    public const byte H1 = 75, H3 = 0;
    public const short H2 = 362, H4 = 321, H5 = 50;
    public const sbyte H6 = 30;

    public SimulatedBme280(int address = 0x76, bool bmp280 = false)
    {
        ConnectionSettings = new I2cConnectionSettings(1, address);
        _registers[0xD0] = bmp280 ? (byte)0x58 : (byte)0x60;
        var cal = _registers.AsSpan(0x88);
        BinaryPrimitives.WriteUInt16LittleEndian(cal[0..], T1);
        BinaryPrimitives.WriteInt16LittleEndian(cal[2..], T2);
        BinaryPrimitives.WriteInt16LittleEndian(cal[4..], T3);
        BinaryPrimitives.WriteUInt16LittleEndian(cal[6..], P1);
        short[] p = [P2, P3, P4, P5, P6, P7, P8, P9];
        for (var i = 0; i < p.Length; i++)
        {
            BinaryPrimitives.WriteInt16LittleEndian(cal[(8 + (2 * i))..], p[i]);
        }

        _registers[0xA1] = H1;
        BinaryPrimitives.WriteInt16LittleEndian(_registers.AsSpan(0xE1), H2);
        _registers[0xE3] = H3;
        _registers[0xE4] = (byte)(H4 >> 4);
        _registers[0xE5] = (byte)((H4 & 0x0F) | ((H5 & 0x0F) << 4));
        _registers[0xE6] = (byte)(H5 >> 4);
        _registers[0xE7] = (byte)H6;
        SetRaw(519888, 415148, 30000);
    }

    public override I2cConnectionSettings ConnectionSettings { get; }

    /// <summary>Unplugged: every transfer fails as the kernel reports a missing device.</summary>
    public bool Unplugged { get; set; }

    public int Reads { get; private set; }

    /// <summary>Sets the raw 20-bit temperature and pressure and the 16-bit humidity ADC values.</summary>
    public void SetRaw(int adcT, int adcP, int adcH)
    {
        _registers[0xF7] = (byte)(adcP >> 12);
        _registers[0xF8] = (byte)(adcP >> 4);
        _registers[0xF9] = (byte)((adcP & 0xF) << 4);
        _registers[0xFA] = (byte)(adcT >> 12);
        _registers[0xFB] = (byte)(adcT >> 4);
        _registers[0xFC] = (byte)((adcT & 0xF) << 4);
        _registers[0xFD] = (byte)(adcH >> 8);
        _registers[0xFE] = (byte)adcH;
    }

    /// <summary>The datasheet's double-precision compensation (section 8.1), independent of the binding's.</summary>
    public static (double T, double P, double H) Expected(int adcT, int adcP, int adcH)
    {
        var v1 = ((adcT / 16384.0) - (T1 / 1024.0)) * T2;
        var v2 = ((adcT / 131072.0) - (T1 / 8192.0)) * ((adcT / 131072.0) - (T1 / 8192.0)) * T3;
        var tFine = v1 + v2;
        var t = tFine / 5120.0;
        var p1 = (tFine / 2.0) - 64000.0;
        var p2 = p1 * p1 * P6 / 32768.0;
        p2 += p1 * P5 * 2.0;
        p2 = (p2 / 4.0) + (P4 * 65536.0);
        p1 = ((P3 * p1 * p1 / 524288.0) + (P2 * p1)) / 524288.0;
        p1 = (1.0 + (p1 / 32768.0)) * P1;
        var p = 1048576.0 - adcP;
        p = (p - (p2 / 4096.0)) * 6250.0 / p1;
        var q1 = P9 * p * p / 2147483648.0;
        var q2 = p * P8 / 32768.0;
        p += (q1 + q2 + P7) / 16.0;
        var h = tFine - 76800.0;
        h = (adcH - ((H4 * 64.0) + (H5 / 16384.0 * h))) * (H2 / 65536.0 * (1.0 + (H6 / 67108864.0 * h * (1.0 + (H3 / 67108864.0 * h)))));
        h *= 1.0 - (H1 * h / 524288.0);
        return (t, p / 100.0, Math.Clamp(h, 0, 100));
    }

    public override byte ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        Read(one);
        return one[0];
    }

    public override void Read(Span<byte> buffer)
    {
        Check();
        Reads++;
        for (var i = 0; i < buffer.Length; i++)
        {
            buffer[i] = _registers[_pointer++];
        }
    }

    public override void WriteByte(byte value) => Write([value]);

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Check();
        if (buffer.Length == 0)
        {
            return;
        }

        _pointer = buffer[0];
        for (var i = 1; i < buffer.Length; i++)
        {
            // A forced measurement is done at once: the mode bits fall back to sleep as on the chip.
            _registers[_pointer] = _pointer == 0xF4 && (buffer[i] & 0x03) is 0x01 or 0x02 ? (byte)(buffer[i] & ~0x03) : buffer[i];
            _pointer++;
        }
    }

    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }

    private void Check()
    {
        if (Unplugged)
        {
            throw new IOException("Error 121 performing I2C data transfer (Remote I/O error)");
        }
    }
}

/// <summary>
/// An INA219 at the register level: 16-bit big-endian registers behind a pointer, and the chip's own
/// arithmetic (shunt voltage from the current through the shunt, current and power from the calibration).
/// </summary>
public sealed class SimulatedIna219(double shuntOhms) : I2cDevice
{
    private readonly ushort[] _registers = new ushort[6];
    private byte _pointer;

    public override I2cConnectionSettings ConnectionSettings { get; } = new(1, 0x40);

    public double BusVolts { get; set; } = 5.0;

    public double Amperes { get; set; } = 0.5;

    private ushort Register(int index)
    {
        var shunt = (short)Math.Round(Amperes * shuntOhms / 10e-6); // 10 µV LSB
        var cal = _registers[5];
        var current = (short)(shunt * cal / 4096);
        return index switch
        {
            1 => (ushort)shunt,
            2 => (ushort)(((int)Math.Round(BusVolts / 0.004) << 3) | 0x2), // CNVR set
            3 => (ushort)(current * ((int)Math.Round(BusVolts / 0.004)) / 5000),
            4 => (ushort)current,
            _ => _registers[index],
        };
    }

    public override byte ReadByte() => throw new NotSupportedException("the INA219 is read 16 bits at a time");

    public override void Read(Span<byte> buffer) => BinaryPrimitives.WriteUInt16BigEndian(buffer, Register(_pointer));

    public override void WriteByte(byte value) => _pointer = value;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _pointer = buffer[0];
        if (buffer.Length >= 3)
        {
            var value = BinaryPrimitives.ReadUInt16BigEndian(buffer[1..]);
            _registers[_pointer] = _pointer == 0 && (value & 0x8000) != 0 ? (ushort)0x399F : value; // reset restores the default config
        }
    }

    public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer)
    {
        Write(writeBuffer);
        Read(readBuffer);
    }
}

/// <summary>A GPIO driver with simulated pins: inputs the test sets, outputs recorded with the time of each write.</summary>
public sealed class RecordingGpioDriver(TimeProvider time) : GpioDriver
{
    private readonly Dictionary<int, PinValue> _values = [];
    private readonly Dictionary<int, PinMode> _modes = [];

    public List<(DateTimeOffset Time, int Pin, PinValue Value)> Writes { get; } = [];

    public HashSet<int> Open { get; } = [];

    public void SetInput(int pin, PinValue value)
    {
        lock (_values)
        {
            _values[pin] = value;
        }
    }

    public PinValue Level(int pin)
    {
        lock (_values)
        {
            return _values.GetValueOrDefault(pin, PinValue.Low);
        }
    }

    protected override int PinCount => 54;

    protected override void OpenPin(int pinNumber) => Open.Add(pinNumber);

    protected override void ClosePin(int pinNumber) => Open.Remove(pinNumber);

    protected override void SetPinMode(int pinNumber, PinMode mode) => _modes[pinNumber] = mode;

    protected override PinMode GetPinMode(int pinNumber) => _modes.GetValueOrDefault(pinNumber, PinMode.Input);

    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) => true;

    protected override PinValue Read(int pinNumber) => Level(pinNumber);

    protected override void Write(int pinNumber, PinValue value)
    {
        lock (_values)
        {
            _values[pinNumber] = value;
            Writes.Add((time.GetUtcNow(), pinNumber, value));
        }
    }

    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback) =>
        throw new NotSupportedException();

    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback) =>
        throw new NotSupportedException();
}
