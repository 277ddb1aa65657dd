using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace EdgeKube.Bench.Infra;

/// <summary>The real edgekube-master as its own process on free loopback ports, with an API client and kubectl.</summary>
public sealed class MasterProc : IAsyncDisposable
{
    private readonly LogTail _log = new();
    private Process? _process;
    private HttpClient? _http;

    public string DataDir { get; } = Directory.CreateTempSubdirectory("edgekube-bench-master-").FullName;

    public int ApiPort { get; } = Run.FreePort();

    public int MqttPort { get; } = Run.FreePort();

    public string Kubeconfig => Path.Combine(DataDir, "admin.kubeconfig");

    public int Pid => _process?.Id ?? throw new InvalidOperationException("master not started");

    public string Log => _log.ToString();

    /// <summary>Every line the master writes, as it arrives.</summary>
    public LogTail Lines => _log;

    /// <summary>Environment variables for every master the bench starts (<c>--master-env</c>: runtime settings such as DOTNET_GCgen0size for the master alone).</summary>
    public static IReadOnlyDictionary<string, string> ExtraEnvironment { get; set; } = new Dictionary<string, string>();

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "edgekube-master.dll");

    public HttpClient Http => _http ?? throw new InvalidOperationException("master not started");

    public async Task StartAsync(double gracePeriodSeconds = 40, string logLevel = "Information", params string[] extraArgs)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] args =
        [
            Dll, "--data-dir", DataDir, "--api-listen", $"127.0.0.1:{ApiPort}", "--mqtt-listen", $"127.0.0.1:{MqttPort}",
            "--node-monitor-grace-period", gracePeriodSeconds.ToString(CultureInfo.InvariantCulture), "--log-level", logLevel,
            .. extraArgs,
        ];
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Run.SetChildEnvironment(psi, ExtraEnvironment);

        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start edgekube-master");
        _process.OutputDataReceived += (_, e) => _log.Add(e.Data);
        _process.ErrorDataReceived += (_, e) => _log.Add(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await Run.UntilAsync(() => Task.FromResult(File.Exists(Path.Combine(DataDir, "admin.token")) && File.Exists(Kubeconfig) && (_log.Contains("Master ready") || _process.HasExited)),
            TimeSpan.FromSeconds(90), "the master to start");
        if (_process.HasExited)
        {
            throw new InvalidOperationException("master exited:\n" + Log);
        }

        // Loopback to the master this bench started: its self-signed serving certificate is not checked.
        var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        _http = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{ApiPort}"), Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(DataDir, "admin.token")).Trim());
    }

    /// <summary><c>edgekube-master node add NAME</c>: the join config it prints.</summary>
    public async Task<string> AddNodeAsync(string name) =>
        await Run.CheckedAsync("dotnet", Dll, "node", "add", name, "--data-dir", DataDir, "--broker-url", $"mqtt://127.0.0.1:{MqttPort}");

    public Task<(int Code, string Output)> KubectlAsync(params string[] args) =>
        Run.ProcessAsync("kubectl", ["--kubeconfig", Kubeconfig, "--request-timeout=120s", .. args]);

    public async Task<string> Kubectl(params string[] args)
    {
        var (code, output) = await KubectlAsync(args);
        if (code != 0)
        {
            throw new InvalidOperationException($"kubectl {string.Join(' ', args)} failed ({code}):\n{output}\nmaster log:\n{Log}");
        }

        return output;
    }

    public async Task<JsonObject> GetAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"GET {path}: {(int)response.StatusCode} {body}");
        }

        return JsonNode.Parse(body)!.AsObject();
    }

    public async Task PostAsync(string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync(path, content);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    public async Task DeleteAsync(string path)
    {
        using var response = await Http.DeleteAsync(path);
        if (!response.IsSuccessStatusCode && (int)response.StatusCode != 404)
        {
            throw new InvalidOperationException($"DELETE {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>
    /// Follows <c>GET path?watch=1</c> (a list is made first for its resourceVersion), calling <paramref name="onEvent"/>
    /// with the event type and object as each line arrives; ends when <paramref name="cancellationToken"/> fires.
    /// </summary>
    public async Task WatchAsync(string path, Action<string, JsonObject> onEvent, CancellationToken cancellationToken, Action? listed = null)
    {
        var list = await GetAsync(path);
        foreach (var item in list["items"]!.AsArray())
        {
            onEvent("ADDED", item!.AsObject());
        }

        listed?.Invoke();

        var rv = list["metadata"]?["resourceVersion"]?.GetValue<string>() ?? "0";
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var sep = path.Contains('?', StringComparison.Ordinal) ? '&' : '?';
                using var request = new HttpRequestMessage(HttpMethod.Get, $"{path}{sep}watch=1&resourceVersion={rv}&allowWatchBookmarks=false");
                using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                response.EnsureSuccessStatusCode();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
                while (await reader.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (line.Length == 0)
                    {
                        continue;
                    }

                    var e = JsonNode.Parse(line)!.AsObject();
                    var obj = e["object"]!.AsObject();
                    if (obj["metadata"]?["resourceVersion"]?.GetValue<string>() is { } r)
                    {
                        rv = r;
                    }

                    onEvent(e["type"]!.GetValue<string>(), obj);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Time from <paramref name="act"/> until a watch on <paramref name="path"/>, listed before it, delivers an object
    /// that <paramref name="match"/> accepts: the moment a client of the API could first know, with no polling interval
    /// in the figure.
    /// </summary>
    public async Task<TimeSpan> TimeUntilWatchShowsAsync(string path, Func<JsonObject, bool> match, Func<Task> act, TimeSpan timeout)
    {
        var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seen = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource(timeout);
        var watch = WatchAsync(path, (type, obj) =>
        {
            if (listed.Task.IsCompleted && type is "ADDED" or "MODIFIED" && match(obj))
            {
                seen.TrySetResult(Stopwatch.GetTimestamp());
            }
        }, stop.Token, listed.SetResult);
        try
        {
            // A watch that failed before it listed (the API refused it) ends the wait with its error.
            await (await Task.WhenAny(listed.Task, watch)).WaitAsync(stop.Token);
            var start = Stopwatch.GetTimestamp();
            await act();
            return Stopwatch.GetElapsedTime(start, await seen.Task.WaitAsync(stop.Token));
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            throw new TimeoutException($"timed out waiting for a watch on {path} to show the change");
        }
        finally
        {
            await stop.CancelAsync();
            await watch;
        }
    }

    public ProcSample Sample() => ProcSample.Of(Pid);

    public async ValueTask DisposeAsync()
    {
        _http?.Dispose();
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
