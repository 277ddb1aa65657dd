using System.Diagnostics;
using System.Text;
using EdgeKube.Agent.Cri;

namespace EdgeKube.Testing;

/// <summary>
/// One real containerd of the tests' own: its root, state, socket and config in <see cref="Root"/>,
/// the CRI plugin set up as these machines need it (a local sandbox image, restricted OOM score,
/// CNI plugins from /usr/lib/cni, configs read from <see cref="CniConfDir"/>). Started directly, or
/// through a launcher such as <c>nsenter --net=/var/run/netns/NS</c> so that its pods live in another network.
/// </summary>
public sealed class ContainerdInstance(string root, string cniConfDir, IReadOnlyList<string>? launcher = null, string? registryConfigPath = null)
{
    private readonly StringBuilder _log = new();
    private Process? _process;

    /// <summary>The containerd process while it runs.</summary>
    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    public string Root { get; } = root;

    public string CniConfDir { get; } = cniConfDir;

    public string SocketPath => Path.Combine(Root, "containerd.sock");

    public string ConfigPath => Path.Combine(Root, "config.toml");

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

    public void WriteConfig()
    {
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(CniConfDir);
        var registry = registryConfigPath is null ? string.Empty : $"""
              [plugins."io.containerd.grpc.v1.cri".registry]
                config_path = "{registryConfigPath}"
            """;
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
              sandbox_image = "{ContainerdHost.PauseImageName}"
              restrict_oom_score_adj = true
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "/usr/lib/cni"
                conf_dir = "{CniConfDir}"
            {registry}
            """);
    }

    /// <summary>Starts containerd and waits until its CRI says the runtime is ready.</summary>
    public async Task StartAsync()
    {
        var command = (launcher ?? []).Concat(["containerd", "--config", ConfigPath]).ToList();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start containerd");
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();

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

            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"containerd did not come up at {SocketPath}:\n{Log}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Imports the locally built test images (busybox and pause) into the k8s.io namespace.</summary>
    public async Task ImportImagesAsync(string imagesDir)
    {
        foreach (var archive in new[] { "busybox.tar", "pause.tar" })
        {
            await RunAsync("ctr", ["--address", SocketPath, "-n", "k8s.io", "images", "import", Path.Combine(imagesDir, archive)]);
        }
    }

    /// <summary>SIGTERM (as systemd stops it) and wait; shims and pods live on.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            await RunAsync("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
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

    /// <summary>Removes every sandbox, stops containerd, unmounts what it left and deletes <see cref="Root"/>.</summary>
    public async Task DestroyAsync(CriRuntimeClient? runtime)
    {
        try
        {
            if (runtime is not null)
            {
                foreach (var sandbox in await runtime.ListPodSandboxAsync(null, CancellationToken.None))
                {
                    await runtime.StopPodSandboxAsync(sandbox.Id, CancellationToken.None);
                    await runtime.RemovePodSandboxAsync(sandbox.Id, CancellationToken.None);
                }
            }
        }
        catch (RuntimeException)
        {
        }

        await StopAsync();
        // Mounts left by snapshots and sandboxes must go before the directory can.
        await RunAsync("sh", ["-c", $"grep -o ' {Root}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l"], check: false);
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

    /// <summary>Runs a command; throws with its output when <paramref name="check"/> and it fails.</summary>
    public static async Task<string> RunAsync(string file, string[] args, bool check = true)
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

        return await stdout + await stderr;
    }
}
