using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeKube.Agent.Server;

namespace EdgeKube.Agent.Tests.Server;

/// <summary>The read-only endpoint's HTTP server, on real loopback sockets.</summary>
public sealed class HttpEndpointTests : IAsyncLifetime
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _requests = [];
    private HttpEndpoint _endpoint = null!;
    private Task _serving = Task.CompletedTask;

    public Task InitializeAsync()
    {
        _endpoint = HttpEndpoint.Listen(IPAddress.Loopback, 0, Handle);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _endpoint.Dispose();
        await _serving;
    }

    private HttpReply Handle(string path)
    {
        lock (_requests)
        {
            _requests.Add(path);
        }

        return path switch
        {
            "/hello" => new HttpReply(200, "text/plain", "héllo\n"),
            "/boom" => throw new InvalidOperationException("the handler failed"),
            _ => new HttpReply(404, "text/plain", "404 page not found\n"),
        };
    }

    private void Serve(int maxConnections = 16, TimeSpan? requestTimeout = null)
    {
        _endpoint.MaxConnections = maxConnections;
        _endpoint.RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(10);
        _serving = _endpoint.ServeAsync(_stop.Token);
    }

    private string Url(string path) => $"http://127.0.0.1:{_endpoint.EndPoint.Port}{path}";

    // One raw exchange: what the server sent until it closed.
    private async Task<string> RawAsync(string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(_endpoint.EndPoint);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        return await ReadToEndAsync(socket);
    }

    private static async Task<string> ReadToEndAsync(Socket socket)
    {
        var received = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer)) > 0)
        {
            received.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(received.ToArray());
    }

    [Fact]
    public async Task Get_and_head_are_answered_with_length_and_close_and_other_methods_get_405()
    {
        Serve();
        using var http = new HttpClient();

        using var get = await http.GetAsync(Url("/hello?verbose=1"));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("héllo\n", await get.Content.ReadAsStringAsync());
        Assert.Equal("text/plain", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Encoding.UTF8.GetByteCount("héllo\n"), get.Content.Headers.ContentLength);
        Assert.True(get.Headers.ConnectionClose);

        using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, Url("/hello")));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(Encoding.UTF8.GetByteCount("héllo\n"), head.Content.Headers.ContentLength);
        var rawHead = await RawAsync("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.EndsWith("\r\n\r\n", rawHead, StringComparison.Ordinal);

        using var missing = await http.GetAsync(Url("/nope"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        using var post = await http.PostAsync(Url("/hello"), new StringContent("x"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Equal(new[] { "GET", "HEAD" }, post.Content.Headers.Allow);

        // Absolute form, as a proxy sends it, and a bare-LF client.
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await RawAsync("GET http://board:10255/hello HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await RawAsync("GET /hello HTTP/1.0\n\n"), StringComparison.Ordinal);

        lock (_requests)
        {
            // The handler saw paths without their query; a POST never reached it.
            Assert.Equal(["/hello", "/hello", "/hello", "/nope", "/hello", "/hello"], _requests);
        }
    }

    [Fact]
    public async Task Garbage_an_oversized_head_and_a_failing_handler_get_clear_errors_and_serving_goes_on()
    {
        Serve();
        Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", await RawAsync("\u0001\u0002 garbage\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", await RawAsync("GET /hello SPDY/3\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", await RawAsync("GET hello HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n",
            await RawAsync("GET /hello HTTP/1.1\r\nX-Big: " + new string('a', 20_000) + "\r\n\r\n"), StringComparison.Ordinal);

        var failed = await RawAsync("GET /boom HTTP/1.1\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 500 Internal Server Error\r\n", failed, StringComparison.Ordinal);
        Assert.EndsWith("InvalidOperationException: the handler failed\n", failed, StringComparison.Ordinal);

        // A client that closes before its head ends gets nothing, and takes nothing down.
        using (var quitter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await quitter.ConnectAsync(_endpoint.EndPoint);
            await quitter.SendAsync("GET /hel"u8.ToArray());
            quitter.Shutdown(SocketShutdown.Send);
            Assert.Equal(string.Empty, await ReadToEndAsync(quitter));
        }

        using var http = new HttpClient();
        Assert.Equal("héllo\n", await http.GetStringAsync(Url("/hello")));
    }

    [Fact]
    public async Task A_connection_waiting_when_serving_starts_is_answered()
    {
        // HttpListener on Linux threw here and kept the port bound (dotnet/corefx#35191): a health probe
        // that connected as the agent started cost the endpoint for the life of the process.
        using var early = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await early.ConnectAsync(_endpoint.EndPoint);
        await early.SendAsync("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());

        Serve();
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await ReadToEndAsync(early), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_taken_port_throws_and_leaves_nothing_bound_and_a_stopped_endpoint_frees_its_port_at_once()
    {
        Serve();
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await RawAsync("GET /hello HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        var port = _endpoint.EndPoint.Port;
        Assert.Throws<SocketException>(() => HttpEndpoint.Listen(IPAddress.Loopback, port, Handle));

        // Stopped, the port binds again at once, though the connection just served sits in TIME_WAIT on the
        // server's side (it closed first; .NET binds with SO_REUSEADDR on Linux): the agent's restart.
        await _stop.CancelAsync();
        _endpoint.Dispose();
        await _serving;
        _endpoint = HttpEndpoint.Listen(IPAddress.Loopback, port, Handle);
        _serving = _endpoint.ServeAsync(CancellationToken.None);
        using var http = new HttpClient();
        Assert.Equal("héllo\n", await http.GetStringAsync(Url("/hello")));
    }

    [Fact]
    public async Task A_silent_client_is_dropped_after_the_timeout_and_connections_beyond_the_limit_are_closed()
    {
        Serve(maxConnections: 2, requestTimeout: TimeSpan.FromMilliseconds(500));
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(_endpoint.EndPoint);
        using var second = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await second.ConnectAsync(_endpoint.EndPoint);

        // Two are held: a third connection is closed unanswered.
        using (var third = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await third.ConnectAsync(_endpoint.EndPoint);
            Assert.Equal(string.Empty, await ReadToEndAsync(third));
        }

        // The silent ones are closed after their time, with nothing said; then requests are served again.
        Assert.Equal(string.Empty, await ReadToEndAsync(silent));
        Assert.Equal(string.Empty, await ReadToEndAsync(second));
        using var http = new HttpClient();
        Assert.Equal("héllo\n", await http.GetStringAsync(Url("/hello")));
    }
}
