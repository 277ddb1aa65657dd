using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeKube.Agent.Server;

/// <summary>What a read-only request gets: status code, content type and body.</summary>
public readonly record struct HttpReply(int Status, string ContentType, string Body);

/// <summary>
/// A small HTTP/1.1 server for read-only GET and HEAD endpoints, one request per connection.
/// </summary>
/// <remarks>
/// Written here rather than taken from <see cref="HttpListener"/>: on Linux its listener starts accepting
/// from inside a constructor before its own state exists, so a client that connects while it starts (a
/// health probe, a Prometheus scrape) makes <c>Start</c> throw and leaves the port bound for the rest of the
/// process (dotnet/corefx#35191). Here the socket is bound and listening before anything accepts, and a
/// failed start closes it. Requests are small and answered with <c>Connection: close</c>, which every HTTP
/// client (kubectl, curl, Prometheus) handles; a connection that sends nothing useful within
/// <see cref="RequestTimeout"/> is closed, and at most <see cref="MaxConnections"/> are served at once.
/// </remarks>
public sealed class HttpEndpoint : IDisposable
{
    private const int MaxHeadBytes = 8 * 1024;
    private readonly Socket _socket;
    private readonly Func<string, HttpReply> _handler;
    private int _connections;

    private HttpEndpoint(Socket socket, Func<string, HttpReply> handler)
    {
        _socket = socket;
        _handler = handler;
    }

    /// <summary>Longest wait for a client's request head (set before serving).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections served at once; more are closed as they come (set before serving).</summary>
    public int MaxConnections { get; set; } = 16;

    /// <summary>Where it listens (with the port the kernel chose when asked for 0).</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>
    /// Binds and listens on <paramref name="address"/> (an IP; <c>0.0.0.0</c> and <c>::</c> mean every address,
    /// IPv4 and IPv6, where the board has IPv6). Throws <see cref="SocketException"/> when the port is taken or the address is
    /// not the board's; nothing stays bound then. <paramref name="handler"/> gets the path of a GET or HEAD
    /// request without its query and answers on the connection's task.
    /// </summary>
    public static HttpEndpoint Listen(IPAddress address, int port, Func<string, HttpReply> handler)
    {
        // Every address, IPv4 and IPv6 alike, as Go's net/http takes 0.0.0.0 and ::.
        var any = (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)) && Socket.OSSupportsIPv6;
        var socket = new Socket(any ? AddressFamily.InterNetworkV6 : address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (any)
            {
                socket.DualMode = true;
            }

            socket.Bind(new IPEndPoint(any ? IPAddress.IPv6Any : address, port));
            socket.Listen(64);
            return new HttpEndpoint(socket, handler);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Accepts and serves until cancelled or disposed.</summary>
    public async Task ServeAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // The client reset before it was accepted, or the process is out of descriptors for a moment:
                // a pause, so that an error that persists does not spin the loop.
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            if (Interlocked.Increment(ref _connections) > MaxConnections)
            {
                Interlocked.Decrement(ref _connections);
                client.Dispose();
                continue;
            }

            _ = Task.Run(() => ServeOneAsync(client, cancellationToken), CancellationToken.None);
        }
    }

    private async Task ServeOneAsync(Socket client, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(RequestTimeout);
            var (head, line) = await ReadHeadAsync(client, timeout.Token).ConfigureAwait(false);
            if (head == Head.Closed)
            {
                return;
            }

            var fields = line.Split(' ');
            var reply = head == Head.TooLarge
                ? new HttpReply(431, "text/plain", "request header fields too large\n")
                : Answer(fields);
            await WriteAsync(client, reply, fields[0] == "HEAD", timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The client went away, was too slow, or the agent is stopping.
        }
        finally
        {
            client.Dispose();
            Interlocked.Decrement(ref _connections);
        }
    }

    private enum Head
    {
        Closed,
        TooLarge,
        Complete,
    }

    // Reads until the blank line that ends the head; gives the request line (only its method when too large).
    private static async Task<(Head, string)> ReadHeadAsync(Socket socket, CancellationToken token)
    {
        var buffer = new byte[MaxHeadBytes];
        var filled = 0;
        while (true)
        {
            var received = buffer.AsSpan(0, filled);
            // HTTP allows a bare LF as a line end; curl and Go never send one, some scrapers do.
            if (received.IndexOf("\r\n\r\n"u8) >= 0 || received.IndexOf("\n\n"u8) >= 0)
            {
                return (Head.Complete, Encoding.ASCII.GetString(received[..received.IndexOf((byte)'\n')]).TrimEnd('\r'));
            }

            if (filled == buffer.Length)
            {
                return (Head.TooLarge, Encoding.ASCII.GetString(received[..Math.Max(0, received.IndexOf((byte)' '))]));
            }

            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, token).ConfigureAwait(false);
            if (read == 0)
            {
                return (Head.Closed, string.Empty);
            }

            filled += read;
        }
    }

    private HttpReply Answer(string[] requestLine)
    {
        if (requestLine is not [{ Length: > 0 } method, var target, var version] || !version.StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return new HttpReply(400, "text/plain", "bad request\n");
        }

        if (method is not ("GET" or "HEAD"))
        {
            return new HttpReply(405, "text/plain", "method not allowed\n");
        }

        // Origin form (/pods?x), or absolute form (http://host:port/pods) as a proxy sends it.
        var path = target;
        if (!path.StartsWith('/') && Uri.TryCreate(path, UriKind.Absolute, out var uri))
        {
            path = uri.AbsolutePath;
        }

        var query = path.IndexOfAny(['?', '#']);
        path = query >= 0 ? path[..query] : path;
        if (!path.StartsWith('/'))
        {
            return new HttpReply(400, "text/plain", "bad request\n");
        }

        try
        {
            return _handler(path);
        }
        catch (Exception e)
        {
            // A bug behind one endpoint answers 500 and leaves the others serving.
            return new HttpReply(500, "text/plain", $"{e.GetType().Name}: {e.Message}\n");
        }
    }

    private static async Task WriteAsync(Socket client, HttpReply reply, bool headOnly, CancellationToken token)
    {
        var body = Encoding.UTF8.GetBytes(reply.Body);
        var head = new StringBuilder(160)
            .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {reply.Status} {Reason(reply.Status)}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Type: {reply.ContentType}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Length: {body.Length}\r\n")
            .Append(reply.Status == 405 ? "Allow: GET, HEAD\r\n" : string.Empty)
            .Append(CultureInfo.InvariantCulture, $"Date: {DateTime.UtcNow:R}\r\n")
            .Append("Connection: close\r\n\r\n")
            .ToString();
        await client.SendAsync(Encoding.ASCII.GetBytes(head), SocketFlags.None, token).ConfigureAwait(false);
        if (!headOnly && body.Length > 0)
        {
            await client.SendAsync(body, SocketFlags.None, token).ConfigureAwait(false);
        }

        // Said we are done, then let the client read it all before the socket goes.
        client.Shutdown(SocketShutdown.Send);
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    };

    /// <summary>Stops listening; the port is free again when this returns.</summary>
    public void Dispose() => _socket.Dispose();
}
