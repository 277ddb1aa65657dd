using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>A real mosquitto for a test: started on a config file, waited for on its loopback port, killed.</summary>
public sealed class MosquittoProcess(int port) : IAsyncDisposable
{
    private Process? _process;

    /// <summary>Starts mosquitto on <paramref name="config"/> (its output is drained, never left to fill a pipe).</summary>
    public void Start(string config)
    {
        _process = Process.Start(new ProcessStartInfo("mosquitto", ["-c", config]) { RedirectStandardError = true, RedirectStandardOutput = true })
            ?? throw new InvalidOperationException("mosquitto did not start");
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    /// <summary>Starts mosquitto and waits until it listens.</summary>
    public async Task StartAsync(string config)
    {
        Start(config);
        await WaitForPortAsync();
    }

    public async Task WaitForPortAsync() =>
        await Eventually.Until(async () =>
        {
            if (_process is { HasExited: true } exited)
            {
                Assert.Fail($"mosquitto exited with code {exited.ExitCode}");
            }

            using var client = new TcpClient();
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), () => "mosquitto not listening");

    /// <summary>Makes mosquitto read its config again (SIGHUP), as after a new node's password.</summary>
    public async Task ReloadAsync()
    {
        using var hup = Process.Start("kill", ["-HUP", _process!.Id.ToString(CultureInfo.InvariantCulture)]);
        await hup!.WaitForExitAsync();
    }

    public async Task StopAsync()
    {
        if (_process is { HasExited: false } m)
        {
            m.Kill();
            await m.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
