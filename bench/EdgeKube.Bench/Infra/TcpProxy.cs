using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace EdgeKube.Bench.Infra;

/// <summary>
/// A loopback TCP proxy the bench puts between agents and the broker: counts the bytes each way, can
/// reset every connection at once (the agents see a dropped connection and reconnect), and can cut
/// the network silently (bytes are swallowed, new connections hang), as a pulled cable does.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket Client, Socket Server)> _pairs = [];
    private long _up;
    private long _down;
    private volatile bool _cut;
    private long _lastUpTicks;
    private ConcurrentQueue<Chunk>? _chunks;

    public TcpProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start(4096);
        _ = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Bytes from the agents to the broker.</summary>
    public long BytesUp => Interlocked.Read(ref _up);

    /// <summary>Bytes from the broker to the agents.</summary>
    public long BytesDown => Interlocked.Read(ref _down);

    public long Bytes => BytesUp + BytesDown;

    /// <summary>When bytes from an agent were last forwarded to the broker (UTC).</summary>
    public DateTime LastUp => new(Interlocked.Read(ref _lastUpTicks), DateTimeKind.Utc);

    /// <summary>Starts keeping every chunk forwarded, with its time and a copy of its bytes (startup and trace scenarios).</summary>
    public void Record() => _chunks = new ConcurrentQueue<Chunk>();

    /// <summary>The chunks forwarded since <see cref="Record"/>.</summary>
    public IReadOnlyList<Chunk> Chunks => _chunks is { } c ? [.. c] : [];

    /// <summary>The agents' ends of the open connections (their local ports), to look the sockets up with <c>ss</c>.</summary>
    public IReadOnlyList<int> ClientPorts
    {
        get
        {
            lock (_pairs)
            {
                return [.. _pairs.Select(p => p.Client.RemoteEndPoint).OfType<IPEndPoint>().Select(e => e.Port)];
            }
        }
    }

    public int Connections
    {
        get
        {
            lock (_pairs)
            {
                return _pairs.Count;
            }
        }
    }

    /// <summary>Silently drops everything from now on (until <see cref="Restore"/>): no FIN, no RST, as a cut cable.</summary>
    public void Cut() => _cut = true;

    public void Restore() => _cut = false;

    /// <summary>Resets every open connection at once.</summary>
    public void DropAll()
    {
        List<(Socket, Socket)> pairs;
        lock (_pairs)
        {
            pairs = [.. _pairs];
            _pairs.Clear();
        }

        foreach (var (client, server) in pairs)
        {
            Reset(client);
            Reset(server);
        }
    }

    private static void Reset(Socket s)
    {
        try
        {
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = HandleAsync(client);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        if (_cut)
        {
            // A cut network: the SYN was answered by the kernel, nothing else ever comes.
            lock (_pairs)
            {
                _pairs.Add((client, client));
            }

            return;
        }

        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await server.ConnectAsync(_target, _stop.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            Reset(client);
            server.Dispose();
            return;
        }

        lock (_pairs)
        {
            _pairs.Add((client, server));
        }

        var up = PumpAsync(client, server, isUp: true);
        var down = PumpAsync(server, client, isUp: false);
        await Task.WhenAny(up, down);
        lock (_pairs)
        {
            _pairs.Remove((client, server));
        }

        client.Dispose();
        server.Dispose();
    }

    private async Task PumpAsync(Socket from, Socket to, bool isUp)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (_cut)
                {
                    continue;
                }

                if (isUp)
                {
                    Interlocked.Exchange(ref _lastUpTicks, DateTime.UtcNow.Ticks);
                }

                _chunks?.Enqueue(new Chunk(DateTime.UtcNow, isUp, buffer.AsSpan(0, n).ToArray()));
                Interlocked.Add(ref isUp ? ref _up : ref _down, n);
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        DropAll();
        _stop.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>One read forwarded by the proxy: when, which way (up = agent to broker) and its bytes (MQTT packets, whole or in part).</summary>
public sealed record Chunk(DateTime At, bool Up, byte[] Data)
{
    public int Bytes => Data.Length;

    /// <summary>Whether the chunk holds every one of <paramref name="texts"/> (UTF-8, as MQTT topics and JSON payloads are).</summary>
    public bool Holds(params string[] texts) => texts.All(t => Data.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(t)) >= 0);
}
