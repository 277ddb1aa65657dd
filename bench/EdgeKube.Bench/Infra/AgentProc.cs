using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Infra;

/// <summary>The real NativeAOT edgekube-agent (artifacts/publish/linux-x64) as its own process, joined with the config <c>node add</c> printed.</summary>
public sealed partial class AgentProc : IAsyncDisposable
{
    private readonly LogTail _log = new();
    private readonly string _configPath;
    private readonly string _socket;
    private readonly string _logLevel;
    private Process? _process;

    public AgentProc(string joinConfig, string containerdSocket, int brokerPort, int? keepAliveSeconds = null, string logLevel = "Information")
    {
        _logLevel = logLevel;
        WorkDir = Directory.CreateTempSubdirectory("edgekube-bench-agent-").FullName;
        _socket = containerdSocket;
        var config = BrokerUrl().Replace(joinConfig, $"url: mqtt://127.0.0.1:{brokerPort}");
        if (keepAliveSeconds is { } k)
        {
            config = config.Replace("  username:", $"  keepAliveSeconds: {k}\n  username:", StringComparison.Ordinal);
        }

        _configPath = Path.Combine(WorkDir, "agent.yaml");
        File.WriteAllText(_configPath, config);
    }

    public string WorkDir { get; }

    public int Pid => _process?.Id ?? throw new InvalidOperationException("agent not started");

    public bool HasExited => _process?.HasExited ?? true;

    public string Log => _log.ToString();

    /// <summary>Every line the agent writes, as it arrives.</summary>
    public LogTail Lines => _log;

    public static string PublishedBinary => Path.Combine(ContainerdHost.RepoRoot, "artifacts", "publish", "linux-x64", "edgekube-agent");

    /// <summary>The agent executable the bench runs: the published NativeAOT binary unless <c>--agent</c> named another (a JIT build, for profilers).</summary>
    public static string Binary { get; set; } = PublishedBinary;

    /// <summary>Environment variables given to every agent the bench starts (<c>--agent-env NAME=VALUE</c>, e.g. GC settings to try).</summary>
    public static IReadOnlyDictionary<string, string> ExtraEnvironment { get; set; } = new Dictionary<string, string>();

    /// <summary>The port of the agent's read-only endpoint (/metrics).</summary>
    public int ReadOnlyPort { get; private set; }

    /// <summary>Publishes the NativeAOT agent for <paramref name="rid"/> when it is not there yet.</summary>
    public static async Task EnsurePublishedAsync(string rid)
    {
        var path = Path.Combine(ContainerdHost.RepoRoot, "artifacts", "publish", rid, "edgekube-agent");
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"bench: publishing the NativeAOT agent for {rid} (scripts/publish.sh {rid})");
            var (code, output) = await Run.ProcessAsync("bash", [Path.Combine(ContainerdHost.RepoRoot, "scripts", "publish.sh"), rid], timeout: TimeSpan.FromMinutes(60));
            if (code != 0)
            {
                throw new InvalidOperationException($"scripts/publish.sh {rid} failed:\n{output}");
            }
        }
    }

    public void Start()
    {
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        ReadOnlyPort = Run.FreePort();
        foreach (var a in new[]
        {
            "--config", _configPath, "--containerd-socket", _socket, "--state-dir", Path.Combine(WorkDir, "state"),
            "--pod-logs-dir", Path.Combine(WorkDir, "logs"), "--read-only-port", ReadOnlyPort.ToString(CultureInfo.InvariantCulture), "--node-ip", "127.0.0.1", "--log-level", _logLevel,
        })
        {
            psi.ArgumentList.Add(a);
        }

        Run.SetChildEnvironment(psi, ExtraEnvironment);

        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start edgekube-agent");
        _process.OutputDataReceived += (_, e) => _log.Add(e.Data);
        _process.ErrorDataReceived += (_, e) => _log.Add(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public ProcSample Sample() => ProcSample.Of(Pid);

    /// <summary>The agent's Prometheus text from its read-only endpoint.</summary>
    public async Task<string> MetricsAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{ReadOnlyPort}/metrics"));
    }

    /// <summary>SIGKILL, as a power cut or the OOM killer.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
    }

    [GeneratedRegex(@"url: mqtt://\S+")]
    private static partial Regex BrokerUrl();
}
