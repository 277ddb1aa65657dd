using System.Diagnostics;
using System.Text.Json;

namespace EdgeKube.Agent.Network;

/// <summary>
/// <see cref="IRouteBackend"/> over iproute2 (<c>ip -j route</c>) and iptables. The agent's routes carry
/// route protocol <see cref="Protocol"/>, so <c>ip route show proto 75</c> lists exactly them, after an
/// agent restart too.
/// </summary>
public sealed class IpRouteBackend : IRouteBackend
{
    /// <summary>The route protocol number that marks the agent's routes (not one iproute2 names).</summary>
    public const int Protocol = 75;

    private const string MasqueradeComment = "edgekube: pod traffic leaving the cluster";

    public async Task<IReadOnlyList<PodRoute>> ListAsync(CancellationToken cancellationToken)
    {
        var json = await RunAsync("ip", ["-j", "-4", "route", "show", "proto", Protocol.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken).ConfigureAwait(false);
        var routes = new List<PodRoute>();
        if (string.IsNullOrWhiteSpace(json))
        {
            return routes;
        }

        using var doc = JsonDocument.Parse(json);
        foreach (var r in doc.RootElement.EnumerateArray())
        {
            if (r.TryGetProperty("dst", out var dst) && r.TryGetProperty("gateway", out var gw))
            {
                routes.Add(new PodRoute(dst.GetString()!, gw.GetString()!));
            }
        }

        return routes;
    }

    public Task ReplaceAsync(PodRoute route, CancellationToken cancellationToken) =>
        RunAsync("ip", ["-4", "route", "replace", route.Destination, "via", route.Gateway, "proto", Protocol.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken);

    public async Task DeleteAsync(PodRoute route, CancellationToken cancellationToken)
    {
        try
        {
            await RunAsync("ip", ["-4", "route", "del", route.Destination, "proto", Protocol.ToString(System.Globalization.CultureInfo.InvariantCulture)], cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkException e) when (e.Message.Contains("No such process", StringComparison.Ordinal))
        {
            // Gone already.
        }
    }

    public async Task EnsureEgressAsync(string podCidr, string clusterCidr, CancellationToken cancellationToken)
    {
        await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1", cancellationToken).ConfigureAwait(false);
        string[] rule = ["POSTROUTING", "-s", podCidr, "!", "-d", clusterCidr, "-m", "comment", "--comment", MasqueradeComment, "-j", "MASQUERADE"];
        try
        {
            await RunAsync("iptables", ["-w", "5", "-t", "nat", "-C", .. rule], cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkException)
        {
            await RunAsync("iptables", ["-w", "5", "-t", "nat", "-A", .. rule], cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<string> RunAsync(string file, string[] args, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process? p;
        try
        {
            p = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new NetworkException($"{file}: {e.Message} (is it installed?)");
        }

        using var process = p ?? throw new NetworkException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new NetworkException($"{file} {string.Join(' ', args)}: {(await stderr.ConfigureAwait(false)).Trim()}");
        }

        return await stdout.ConfigureAwait(false);
    }
}
