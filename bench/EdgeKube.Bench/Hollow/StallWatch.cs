using System.Diagnostics;

namespace EdgeKube.Bench.Hollow;

/// <summary>
/// The longest time the bench process stood still: a thread of its own wakes every 50 ms and notes how much
/// later than that it woke. A GC pause suspends it with every other managed thread, and a machine with no
/// core free delays it, so its longest gap is the longest time no hollow node could have sent a ping.
/// </summary>
public sealed class StallWatch : IDisposable
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(50);
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _longestTicks;

    public StallWatch()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "bench stall watch" };
        _thread.Start();
    }

    /// <summary>The longest stall since the last call (beyond the 50 ms the thread means to sleep), and starts over.</summary>
    public TimeSpan TakeLongest() => TimeSpan.FromTicks(Interlocked.Exchange(ref _longestTicks, 0));

    private void Run()
    {
        var last = Stopwatch.GetTimestamp();
        while (!_stop)
        {
            Thread.Sleep(Period);
            var now = Stopwatch.GetTimestamp();
            var late = Stopwatch.GetElapsedTime(last, now) - Period;
            last = now;
            var ticks = late.Ticks;
            long seen;
            while (ticks > (seen = Interlocked.Read(ref _longestTicks)) && Interlocked.CompareExchange(ref _longestTicks, ticks, seen) != seen)
            {
            }
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
