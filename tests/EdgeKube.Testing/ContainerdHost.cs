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

    private ContainerdInstance _containerd = null!;
    private Process? _registry;

    public string Root { get; } = Directory.CreateTempSubdirectory("edgekube-containerd-").FullName;

    public string SocketPath => Path.Combine(Root, "containerd.sock");

    /// <summary>The containerd process while it runs (the benchmarks sample its CPU).</summary>
    public int? ContainerdPid => _containerd?.Pid;

    public string ConfigPath => Path.Combine(Root, "config.toml");

    public string BusyboxImage => BusyboxImageName;

    public CriRuntimeClient Runtime { get; private set; } = null!;

    private readonly StringBuilder _log = new();

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _containerd?.Log + _log;
            }
        }
    }

    public static string RepoRoot { get; } = FindRepoRoot();

    public async Task InitializeAsync()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException("the integration tests run containerd and need root: run scripts/test.sh (it uses sudo)");
        }

        var images = Path.Combine(RepoRoot, "artifacts", "images");
        await RunAsync("bash", Path.Combine(RepoRoot, "scripts", "build-test-image.sh"), images);

        _containerd = new ContainerdInstance(Root, Path.Combine(Root, "cni"), registryConfigPath: Path.Combine(Root, "certs.d"));
        WriteConfig();
        await _containerd.StartAsync();
        Runtime = new CriRuntimeClient(SocketPath, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2));
        await _containerd.ImportImagesAsync(images);

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

        _containerd.WriteConfig();
    }

    /// <summary>Stops containerd (SIGTERM, as systemd does) and starts it again on the same root; shims and pods live on.</summary>
    public async Task RestartContainerdAsync()
    {
        await _containerd.StopAsync();
        await _containerd.StartAsync();
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

    private static int FreeLoopbackPort() => EdgeKube.Testing.Ports.Free();

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
        if (_registry is { HasExited: false } registry)
        {
            registry.Kill();
            await registry.WaitForExitAsync();
        }

        await _containerd.DestroyAsync(Runtime);
        Runtime?.Dispose();
        await RunAsync("ip", ["link", "delete", BridgeName], check: false);
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

    private static Task RunAsync(string file, string[] args, bool check) => ContainerdInstance.RunAsync(file, args, check);

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
