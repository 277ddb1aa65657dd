using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Bench.Infra;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Scenarios;

/// <summary>
/// Scenario 1: the NativeAOT agent joined to a master, idle with 0, 10 and 30 busybox pods running:
/// RSS and peak, CPU seconds per minute, open fds, threads; and the stripped linux-arm64 binary's size.
/// </summary>
public static class Footprint
{
    private const double RssTargetMb = 20;
    private const double CpuTargetPercent = 0.5;
    private const double BinaryTargetMb = 20;

    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("footprint", "Footprint: NativeAOT agent, idle, joined to a master",
            "pods running", "RSS MiB", "peak RSS (VmHWM) MiB", "CPU s/min idle", "% of a core", "fds", "threads", "target");
        await using var cluster = await Cluster.StartAsync();
        await Task.Delay(TimeSpan.FromSeconds(10));
        var running = 0;
        foreach (var pods in new[] { 0, 10, 30 })
        {
            if (pods > running)
            {
                var yaml = Cluster.PodsYaml("fp", pods);
                await cluster.ApplyAsync(yaml);
                await cluster.WaitRunningAsync("fp", pods, TimeSpan.FromMinutes(5));
                running = pods;
                // Let the start-up work (status reports, first probes, relists) die down.
                await Task.Delay(TimeSpan.FromSeconds(10));
            }

            var rss = new List<double>();
            var cpu = new List<double>();
            var fds = new List<double>();
            var threads = new List<double>();
            ProcSample last = cluster.Agent.Sample();
            for (var run = 0; run < o.Runs; run++)
            {
                var before = cluster.Agent.Sample();
                await Task.Delay(TimeSpan.FromSeconds(o.Window));
                last = cluster.Agent.Sample();
                cpu.Add((last.CpuSeconds - before.CpuSeconds) / (last.At - before.At).TotalSeconds * 60);
                rss.Add(last.RssBytes / 1048576.0);
                fds.Add(last.Fds);
                threads.Add(last.Threads);
            }

            var rssS = Summary.Of(rss);
            var cpuS = Summary.Of(cpu);
            var percent = Summary.Of(cpu.Select(c => c / 60 * 100));
            var target = pods == 10
                ? $"RSS ≤ {RssTargetMb} MiB: {Report.Verdict(rssS.Median <= RssTargetMb)}; CPU ≤ {CpuTargetPercent}%: {Report.Verdict(percent.Median <= CpuTargetPercent)}"
                : $"CPU ≤ {CpuTargetPercent}%: {Report.Verdict(percent.Median <= CpuTargetPercent)}";
            report.Row(pods.ToString(CultureInfo.InvariantCulture), rssS.Show("0.0"), Report.Mb(last.PeakRssBytes), cpuS.Show("0.000"), percent.Show("0.00"),
                Summary.Of(fds).Show("0"), Summary.Of(threads).Show("0"), target);
            report.Data[$"pods{pods}"] = new JsonObject
            {
                ["rssMiB"] = rssS.Json(),
                ["peakRssMiB"] = last.PeakRssBytes / 1048576.0,
                ["cpuSecondsPerMinute"] = cpuS.Json(),
                ["cpuPercentOfCore"] = percent.Json(),
                ["fds"] = Summary.Of(fds).Json(),
                ["threads"] = Summary.Of(threads).Json(),
            };
        }

        await AgentProc.EnsurePublishedAsync("linux-arm64");
        var arm = Path.Combine(ContainerdHost.RepoRoot, "artifacts", "publish", "linux-arm64", "edgekube-agent");
        var size = new FileInfo(arm).Length;
        var file = (await Run.ProcessAsync("file", ["-b", arm])).Output.Trim();
        var stripped = file.Contains("stripped", StringComparison.Ordinal) && !file.Contains("not stripped", StringComparison.Ordinal);
        report.Row("linux-arm64 binary", "", "", "", "", "", "", $"{Report.Mb(size)} MiB{(stripped ? " (stripped)" : " (NOT stripped)")}; ≤ {BinaryTargetMb} MiB: {Report.Verdict(size / 1048576.0 <= BinaryTargetMb)}");
        report.Data["arm64BinaryBytes"] = size;
        report.Data["arm64BinaryStripped"] = stripped;
        report.Note($"Each figure: median (min–max) of {o.Runs} windows of {o.Window} s, after the pods were Running and 10 s of quiet. CPU is utime+stime of the agent process from /proc/PID/stat; RSS and VmHWM from /proc/PID/status (VmHWM is the peak over the whole run, start-up included).");
        report.Note("The agent runs the published NativeAOT binary (artifacts/publish/linux-x64) against the bench's own containerd; pods are busybox `sleep` started by `kubectl apply` through the master.");
        return report;
    }
}
