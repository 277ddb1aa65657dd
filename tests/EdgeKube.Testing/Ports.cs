using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EdgeKube.Testing;

/// <summary>
/// Free loopback ports for the servers the tests start. Asking the kernel for port 0 returns one from
/// the ephemeral range, which every outgoing connection draws from as well: between the probe and the
/// server's own bind, an agent's connection to its broker can take that very port, and the server
/// cannot listen. These ports come from below the ephemeral range, where no outgoing connection goes.
/// </summary>
public static class Ports
{
    private static int _next = -1;

    public static int Free()
    {
        var (low, high) = Range();
        var span = high - low;
        if (span <= 0)
        {
            return Kernel();
        }

        // Each test process starts somewhere else in the range, then walks it.
        Interlocked.CompareExchange(ref _next, (Environment.ProcessId * 7919) % span, -1);
        for (var tries = 0; tries < span; tries++)
        {
            var port = low + (Interlocked.Increment(ref _next) % span);
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
                // Held by some other server: the next one.
            }
        }

        return Kernel();
    }

    /// <summary>From 10000 up to the start of the kernel's ephemeral range (32768 on Debian).</summary>
    private static (int Low, int High) Range()
    {
        var ephemeralLow = 32768;
        try
        {
            var text = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            ephemeralLow = int.Parse(text[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }

        return (10000, ephemeralLow);
    }

    private static int Kernel()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
