using System.Diagnostics;
using System.Text;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>Runs the real edgekube-master (its built assembly, as its own process) on free loopback ports, and the real kubectl against it.</summary>
public sealed class MasterProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private Process? _process;

    public string DataDir { get; } = Directory.CreateTempSubdirectory("edgekube-master-").FullName;

    public int ApiPort { get; } = AgentProcess.FreePort();

    public int MqttPort { get; } = AgentProcess.FreePort();

    /// <summary>Where the embedded broker listens (loopback unless a test needs nodes in other network namespaces to reach it).</summary>
    public string MqttAddress { get; init; } = "127.0.0.1";

    /// <summary><c>--node-monitor-grace-period</c> in seconds.</summary>
    public int GracePeriodSeconds { get; init; } = 10;

    public string Kubeconfig => Path.Combine(DataDir, "admin.kubeconfig");

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Environment variables set for the master process (NOTIFY_SOCKET, WATCHDOG_USEC, ...).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    private static string MasterDll => Path.Combine(AppContext.BaseDirectory, "edgekube-master.dll");

    public async Task StartAsync(params string[] extra)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in Environment)
        {
            psi.Environment[name] = value;
        }

        foreach (var a in new[] { MasterDll, "--data-dir", DataDir, "--api-listen", $"127.0.0.1:{ApiPort}", "--mqtt-listen", $"{MqttAddress}:{MqttPort}", "--node-monitor-grace-period", GracePeriodSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start edgekube-master");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await Eventually.Until(() => Task.FromResult(Log.Contains("Master ready", StringComparison.Ordinal) || _process.HasExited), TimeSpan.FromSeconds(60), () => "master did not start:\n" + Log);
        Assert.False(_process.HasExited, "master exited:\n" + Log);
    }

    /// <summary>Runs <c>edgekube-master node add NAME</c> and returns the join config it printed.</summary>
    public async Task<string> AddNodeAsync(string name)
    {
        var (code, output) = await RunAsync("dotnet", [MasterDll, "node", "add", name, "--data-dir", DataDir]);
        Assert.True(code == 0, output);
        return output;
    }

    /// <summary>Runs an <c>edgekube-master</c> command (<c>node add</c>, <c>broker-config</c>, ...) on this master's data dir.</summary>
    public Task<(int Code, string Output)> CliAsync(params string[] args) =>
        RunAsync("dotnet", [MasterDll, .. args, "--data-dir", DataDir]);

    /// <summary>Starts a long-running kubectl (<c>get -w</c>, <c>logs -f</c>) against this master.</summary>
    public StreamingProcess KubectlStream(params string[] args) => new("kubectl", ["--kubeconfig", Kubeconfig, .. args]);

    /// <summary>Runs <c>edgekube-master node remove NAME</c>.</summary>
    public async Task RemoveNodeAsync(string name)
    {
        var (code, output) = await RunAsync("dotnet", [MasterDll, "node", "remove", name, "--data-dir", DataDir]);
        Assert.True(code == 0, output);
    }

    /// <summary>Runs the real kubectl with the master's admin kubeconfig; returns exit code and combined output.</summary>
    public Task<(int Code, string Output)> KubectlAsync(params string[] args) =>
        RunAsync("kubectl", ["--kubeconfig", Kubeconfig, "--request-timeout=20s", .. args]);

    /// <summary>kubectl that must succeed; returns its output.</summary>
    public async Task<string> Kubectl(params string[] args)
    {
        var (code, output) = await KubectlAsync(args);
        Assert.True(code == 0, $"kubectl {string.Join(' ', args)} failed ({code}):\n{output}\nmaster log:\n{AgentProcess.Tail(Log, 30)}");
        return output;
    }

    public static Task<(int Code, string Output)> RunAsync(string file, string[] args, string? stdin = null, TimeSpan? timeout = null) =>
        EdgeKube.Testing.ProcessRunner.RunAsync(file, args, timeout ?? TimeSpan.FromSeconds(90), stdin);

    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            using var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill!.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
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
