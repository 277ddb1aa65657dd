using System.Diagnostics;

namespace EdgeKube.Deploy.Tests;

/// <summary>The repository the tests run from, and a way to run its scripts and the system's tools.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
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

    /// <summary>Runs a program; returns its exit code and its stdout and stderr, interleaved as far as the pipes allow.</summary>
    public static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, string? workDir = null, TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? Root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + file);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file}: timed out\n" + await stdout + await stderr);
        }

        return (p.ExitCode, await stdout + await stderr);
    }

    /// <summary>Runs a program that must succeed; returns its output.</summary>
    public static async Task<string> MustRunAsync(string file, params string[] args)
    {
        var (code, output) = await RunAsync(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)} exited {code}:\n{output}");
        return output;
    }
}

/// <summary>A temporary directory removed at the end of the test.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("edgekube-deploy-").FullName;

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
