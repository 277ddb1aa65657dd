using System.Net.Sockets;
using System.Text;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// What systemd is to a Type=notify service: a unix datagram socket whose path goes into NOTIFY_SOCKET,
/// recording every datagram (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...) in arrival order.
/// </summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly List<string> _messages = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiving;
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-notify-").FullName;

    public NotifySocket()
    {
        Path = System.IO.Path.Combine(_dir, "notify.sock");
        _socket.Bind(new UnixDomainSocketEndPoint(Path));
        _receiving = ReceiveAsync();
    }

    public string Path { get; }

    /// <summary>Every assignment received (a datagram may carry several, one per line).</summary>
    public List<string> Messages
    {
        get
        {
            lock (_messages)
            {
                return [.. _messages];
            }
        }
    }

    public int Count(string assignment) => Messages.Count(m => m == assignment);

    private async Task ReceiveAsync()
    {
        var buffer = new byte[4096];
        while (!_stop.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_messages)
            {
                _messages.AddRange(Encoding.UTF8.GetString(buffer, 0, n).Split('\n', StringSplitOptions.RemoveEmptyEntries));
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
        _receiving.Wait(TimeSpan.FromSeconds(5));
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
