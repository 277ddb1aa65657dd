using System.Diagnostics;
using System.Text;
using EdgeKube.Agent.Cri;

namespace EdgeKube.Testing;

/// <summary>
/// A real containerd of the tests' own: its own root, state, socket and config in a temp directory,
/// a CNI bridge on a subnet of its own, the locally built busybox and pause images imported, and a
/// local docker-registry on a free loopback port holding <see cref="RegistryImage"/> for pull tests.
/// Bridge, subnet and port are chosen per test process, so two test runs on one machine (two
/// worktrees) do not meet.
/// Used by the integration tests (their "containerd" collection fixture) and by the benchmarks.
/// </summary>
public class ContainerdHost
{
    /// <summary>The app image, imported into containerd (never pulled).</summary>
    public const string BusyboxImageName = "docker.io/edgekube/busybox:test";

    /// <summary>The sandbox image the CRI plugin is configured with.</summary>
    public const string PauseImageName = "docker.io/edgekube/pause:test";

    /// <summary>An image only the local registry holds: pulling it is a real pull.</summary>
    public static string RegistryImage => $"{RegistryAddress}/edgekube/busybox:v1";

    private static readonly string RegistryAddress = $"127.0.0.1:{FreeLoopbackPort()}";

    /// <summary>The CNI bridge of this test process.</summary>
    public static string BridgeName { get; } = $"ektest{Environment.ProcessId % 100000}";

    /// <summary>The pod subnet of this test process: 10.244.200.0/24 to 10.244.249.0/24, one not routed yet.</summary>
    public static string Subnet { get; } = PickSubnet();

    private readonly StringBuilder _log = new();
    private Process? _containerd;
    private Process? _registry;

    public string Root { get; } = Directory.CreateTempSubdirectory("edgekube-containerd-").FullName;

    public string SocketPath => Path.Combine(Root, "containerd.sock");

    public string ConfigPath => Path.Combine(Root, "config.toml");

    public string BusyboxImage => BusyboxImageName;

    public CriRuntimeClient Runtime { get; private set; } = null!;

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

    public static string RepoRoot { get; } = FindRepoRoot();

    public async Task InitializeAsync()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException("running containerd needs root: run scripts/test.sh or bench/run.sh (they use sudo)");
        }

        var images = Path.Combine(RepoRoot, "artifacts", "images");
        await RunAsync("bash", Path.Combine(RepoRoot, "scripts", "build-test-image.sh"), images);

        WriteConfig();
        await StartContainerdAsync();
        Runtime = new CriRuntimeClient(SocketPath, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2));

        foreach (var archive in new[] { "busybox.tar", "pause.tar" })
        {
            await RunAsync("ctr", "--address", SocketPath, "-n", "k8s.io", "images", "import", Path.Combine(images, archive));
        }

        await StartRegistryAsync(Path.Combine(images, "busybox.tar"));
    }

    private void WriteConfig()
    {
        var cni = Path.Combine(Root, "cni");
        Directory.CreateDirectory(cni);
        File.WriteAllText(Path.Combine(cni, "10-edgekube-test.conflist"), """
            {
              "cniVersion": "1.0.0",
              "name": "edgekube-test",
              "plugins": [
                {"type": "bridge", "bridge": "BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": "SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}],
                          "dataDir": "CNI_DATA"}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
              ]
            }
            """.Replace("CNI_DATA", Path.Combine(Root, "cni-ipam"), StringComparison.Ordinal)
             .Replace("BRIDGE", BridgeName, StringComparison.Ordinal).Replace("SUBNET", Subnet, StringComparison.Ordinal));

        var certs = Path.Combine(Root, "certs.d", RegistryAddress);
        Directory.CreateDirectory(certs);
        File.WriteAllText(Path.Combine(certs, "hosts.toml"), $"""
            server = "http://{RegistryAddress}"
            [host."http://{RegistryAddress}"]
              capabilities = ["pull", "resolve"]
              skip_verify = true
            """);

        File.WriteAllText(ConfigPath, $"""
            version = 2
            root = "{Root}/root"
            state = "{Root}/state"
            [grpc]
              address = "{SocketPath}"
            [ttrpc]
              address = "{SocketPath}.ttrpc"
            [debug]
              address = ""
            [metrics]
              address = ""
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "{PauseImageName}"
              restrict_oom_score_adj = true
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "/usr/lib/cni"
                conf_dir = "{cni}"
              [plugins."io.containerd.grpc.v1.cri".registry]
                config_path = "{Root}/certs.d"
            """);
    }

    private async Task StartContainerdAsync()
    {
        var psi = new ProcessStartInfo("containerd") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(ConfigPath);
        _containerd = Process.Start(psi) ?? throw new InvalidOperationException("could not start containerd");
        _containerd.ErrorDataReceived += (_, e) => Append(e.Data);
        _containerd.OutputDataReceived += (_, e) => Append(e.Data);
        _containerd.BeginErrorReadLine();
        _containerd.BeginOutputReadLine();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        using var probe = new CriRuntimeClient(SocketPath, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2));
        while (true)
        {
            try
            {
                var status = await probe.StatusAsync(CancellationToken.None);
                if (status.Conditions.Any(c => c.Type == "RuntimeReady" && c.Status))
                {
                    return;
                }
            }
            catch (RuntimeException)
            {
            }

            if (_containerd.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"containerd did not come up at {SocketPath}:\n{Log}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Stops containerd (SIGTERM, as systemd does) and starts it again on the same root; shims and pods live on.</summary>
    public async Task RestartContainerdAsync()
    {
        await StopContainerdAsync();
        await StartContainerdAsync();
    }

    private async Task StopContainerdAsync()
    {
        if (_containerd is { HasExited: false } p)
        {
            await RunAsync("kill", "-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill();
                await p.WaitForExitAsync();
            }
        }
    }

    private async Task StartRegistryAsync(string busyboxArchive)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        if (!await RegistryAnswersAsync(http))
        {
            var dir = Path.Combine(Root, "registry");
            Directory.CreateDirectory(dir);
            var config = Path.Combine(Root, "registry.yml");
            File.WriteAllText(config, $"""
                version: 0.1
                log:
                  level: warn
                storage:
                  filesystem:
                    rootdirectory: {dir}
                  delete:
                    enabled: true
                http:
                  addr: {RegistryAddress}
                """);
            var psi = new ProcessStartInfo("docker-registry") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("serve");
            psi.ArgumentList.Add(config);
            _registry = Process.Start(psi) ?? throw new InvalidOperationException("could not start docker-registry");
            _registry.ErrorDataReceived += (_, e) => Append(e.Data);
            _registry.OutputDataReceived += (_, e) => Append(e.Data);
            _registry.BeginErrorReadLine();
            _registry.BeginOutputReadLine();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (!await RegistryAnswersAsync(http))
            {
                if (_registry.HasExited || DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"docker-registry did not come up on {RegistryAddress}:\n{Log}");
                }

                await Task.Delay(200);
            }
        }

        await RunAsync("skopeo", "copy", "--quiet", "--dest-tls-verify=false", $"docker-archive:{busyboxArchive}", $"docker://{RegistryImage}");
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string PickSubnet()
    {
        var routes = File.Exists("/proc/net/route") ? File.ReadAllText("/proc/net/route") : "";
        for (var i = 0; i < 50; i++)
        {
            var octet = 200 + ((Environment.ProcessId + i) % 50);
            // /proc/net/route holds destinations as little-endian hex: 10.244.N.0 is 00NNF40A.
            var hex = $"00{octet:X2}F40A";
            if (!routes.Contains(hex, StringComparison.Ordinal))
            {
                return $"10.244.{octet}.0/24";
            }
        }

        throw new InvalidOperationException("no free test subnet in 10.244.200.0/24-10.244.249.0/24");
    }

    private static async Task<bool> RegistryAnswersAsync(HttpClient http)
    {
        try
        {
            using var response = await http.GetAsync($"http://{RegistryAddress}/v2/");
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            foreach (var sandbox in await Runtime.ListPodSandboxAsync(null, CancellationToken.None))
            {
                await Runtime.StopPodSandboxAsync(sandbox.Id, CancellationToken.None);
                await Runtime.RemovePodSandboxAsync(sandbox.Id, CancellationToken.None);
            }
        }
        catch (RuntimeException)
        {
        }

        Runtime?.Dispose();
        await StopContainerdAsync();
        if (_registry is { HasExited: false } registry)
        {
            registry.Kill();
            await registry.WaitForExitAsync();
        }

        // Mounts left by snapshots and sandboxes must go before the directory can.
        await RunAsync("sh", "-c", $"grep -o ' {Root}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l", check: false);
        await RunAsync("ip", ["link", "delete", BridgeName], check: false);
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
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

    private static Task RunAsync(string file, params string[] args) => RunAsync(file, args, check: true);

    private static async Task RunAsync(string file, string[] args, bool check)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + file);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}):\n{await stdout}{await stderr}");
        }
    }

    private static Task RunAsync(string file, string arg0, string arg1, bool check) => RunAsync(file, [arg0, arg1], check);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EdgeKube.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("EdgeKube.sln not found above " + AppContext.BaseDirectory);
    }
}
