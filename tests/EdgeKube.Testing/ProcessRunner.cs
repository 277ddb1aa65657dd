using System.Diagnostics;

namespace EdgeKube.Testing;

/// <summary>Runs a helper program (kubectl, edgekube-master's CLI, ...) to its end, for tests and benchmarks.</summary>
public static class ProcessRunner
{
    /// <summary>Runs <paramref name="file"/>; returns its exit code and its stdout then stderr, or -1 and "timed out" when it outlives <paramref name="timeout"/> (it is then killed).</summary>
    public static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + file);
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }

        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, "timed out: " + await stdout + await stderr);
        }

        return (p.ExitCode, await stdout + await stderr);
    }
}
