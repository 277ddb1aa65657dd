using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using k8s;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// Runs the real edgekube-agent (the built assembly, as its own process) against the test containerd,
/// with its own manifest directory, state directory, pod log directory and read-only port.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private Process? _process;

    public AgentProcess(string socketPath, string? workDir = null, string nodeName = "test-node")
    {
        SocketPath = socketPath;
        NodeName = nodeName;
        WorkDir = workDir ?? Directory.CreateTempSubdirectory("edgekube-agent-").FullName;
        ManifestDir = Path.Combine(WorkDir, "manifests");
        StateDir = Path.Combine(WorkDir, "state");
        LogsDir = Path.Combine(WorkDir, "logs");
        Directory.CreateDirectory(ManifestDir);
        Port = FreePort();
    }

    public string SocketPath { get; }

    public string NodeName { get; }

    public string WorkDir { get; }

    public string ManifestDir { get; }

    public string StateDir { get; }

    public string LogsDir { get; }

    public int Port { get; private set; }

    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary><c>--cni-conf-dir</c>; empty by default, so tests on the host never write CNI configs or host routes.</summary>
    public string CniConfDir { get; init; } = string.Empty;

    /// <summary>Runs the agent through this command (e.g. <c>nsenter --net=/var/run/netns/NS</c>); none by default.</summary>
    public IReadOnlyList<string> Launcher { get; init; } = [];

    /// <summary><c>--address</c> of the read-only endpoint (and where the test reaches it).</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary><c>--node-ip</c>.</summary>
    public string NodeIp { get; init; } = "127.0.0.1";

    /// <summary>Environment variables set for the agent process (NOTIFY_SOCKET, WATCHDOG_USEC, ...).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>How to start the agent: default <c>dotnet edgekube-agent.dll</c>; the published binary (under qemu) otherwise.</summary>
    public IReadOnlyList<string>? Command { get; init; }

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

    public bool HasExited => _process?.HasExited ?? true;

    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    /// <summary>Starts the agent and waits until its read-only endpoint answers.</summary>
    public async Task StartAsync(bool waitHealthy = true)
    {
        // The launcher (nsenter into a node's netns) wraps the command (dotnet edgekube-agent.dll, or the published binary).
        string[] command = [.. Launcher, .. Command ?? ["dotnet", Path.Combine(AppContext.BaseDirectory, "edgekube-agent.dll")]];
        var psi = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in Environment)
        {
            psi.Environment[name] = value;
        }

        foreach (var arg in command.Skip(1).Concat(
        [
            "--node-name", NodeName, "--pod-manifest-path", ManifestDir, "--containerd-socket", SocketPath,
            "--state-dir", StateDir, "--pod-logs-dir", LogsDir, "--read-only-port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--node-ip", NodeIp, "--cni-conf-dir", CniConfDir,
        ]).Concat(Address == "127.0.0.1" ? [] : ["--address", Address]).Concat(ExtraArgs))
        {
            psi.ArgumentList.Add(arg);
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start edgekube-agent");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        if (waitHealthy)
        {
            await Eventually.Until(async () => await HealthzAsync() == HttpStatusCode.OK, TimeSpan.FromSeconds(60), () => "agent never became healthy:\n" + Log);
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    public async Task<HttpStatusCode?> HealthzAsync()
    {
        try
        {
            using var response = await _http.GetAsync($"http://{Address}:{Port}/healthz");
            return response.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    public async Task<string> GetAsync(string path)
    {
        using var response = await _http.GetAsync($"http://{Address}:{Port}{path}");
        return await response.Content.ReadAsStringAsync();
    }

    public async Task<V1PodList> PodsAsync() => KubernetesJson.Deserialize<V1PodList>(await GetAsync("/pods"));

    /// <summary>The pod named <paramref name="name"/> (static pods get the node name appended).</summary>
    public async Task<V1Pod?> PodAsync(string name)
    {
        try
        {
            var pods = await PodsAsync();
            return pods.Items.FirstOrDefault(p => p.Metadata.Name == name || p.Metadata.Name == name + "-" + NodeName);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>Waits until the pod exists and <paramref name="condition"/> holds; returns it.</summary>
    public async Task<V1Pod> WaitForPodAsync(string name, Func<V1Pod, bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        V1Pod? last = null;
        await Eventually.Until(async () =>
        {
            last = await PodAsync(name);
            return last is not null && condition(last);
        }, timeout ?? TimeSpan.FromSeconds(60), () => $"pod {name}: {what ?? "condition"} not reached. Last status:\n{(last is null ? "(none)" : KubernetesJson.Serialize(last.Status))}\nAgent log:\n{Tail(Log, 40)}");
        return last!;
    }

    public Task WaitForPodGoneAsync(string name, TimeSpan? timeout = null) =>
        Eventually.Until(async () => await PodAsync(name) is null && !HasExited, timeout ?? TimeSpan.FromSeconds(60), () => $"pod {name} still listed\n{Tail(Log, 40)}");

    public void WriteManifest(string fileName, string yaml) => File.WriteAllText(Path.Combine(ManifestDir, fileName), yaml);

    public void RemoveManifest(string fileName) => File.Delete(Path.Combine(ManifestDir, fileName));

    /// <summary>SIGKILL: no chance to clean up, as a power cut or OOM kill.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM and wait, as systemd stops it.</summary>
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

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        _http.Dispose();
    }

    public static string Tail(string text, int lines)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    public static int FreePort() => EdgeKube.Testing.Ports.Free();
}

/// <summary>Polling with a deadline: the only way the integration tests wait.</summary>
public static class Eventually
{
    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, Func<string> failure, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail(failure());
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(200));
        }
    }
}
