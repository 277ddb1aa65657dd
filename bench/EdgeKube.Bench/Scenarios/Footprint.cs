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

    private static int Releases(string agentLog) =>
        System.Text.RegularExpressions.Regex.Count(agentLog, "advised the kernel to reclaim");

    public static async Task<Report> RunAsync(BenchOptions o)
    {
        var report = new Report("footprint", "Footprint: NativeAOT agent, idle, joined to a master",
            "pods running", "RSS MiB", "anonymous MiB", "binary image MiB", "GC heap MiB", "allocated KB/s", "peak RSS (VmHWM) MiB", "CPU s/min idle", "% of a core", "containerd % of a core", "fds", "threads", "target");
        await using var cluster = await Cluster.StartAsync();
        var containerdPid = cluster.Containerd.ContainerdPid ?? throw new InvalidOperationException("the bench's containerd is not running");
        // Past the agent's start-up: it gives back the executable pages only start-up needed 30 s after starting
        // (StartupPagesService), and the idle figures are about the agent after that.
        await Task.Delay(TimeSpan.FromSeconds(45));
        var running = 0;
        foreach (var pods in o.FootprintPods)
        {
            if (pods > running)
            {
                var yaml = Cluster.PodsYaml("fp", pods);
                await cluster.ApplyAsync(yaml);
                var released = Releases(cluster.Agent.Log);
                await cluster.WaitRunningAsync("fp", pods, TimeSpan.FromMinutes(5));
                running = pods;
                // The agent gives back the pages the pods' start needed once their statuses have been quiet for
                // 30 s (StartupPagesService): the idle figures are about the agent after that, as a board runs
                // for days. Then the start-up work (status reports, first probes, relists) has died down too.
                var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
                while (Releases(cluster.Agent.Log) == released && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1));
                }

                if (Releases(cluster.Agent.Log) == released)
                {
                    report.Note($"With {pods} pods the agent did not release its pages again within 3 minutes of the pods Running: the figures include what their start touched.");
                }

                await Task.Delay(TimeSpan.FromSeconds(5));
            }

            var rss = new List<double>();
            var anonymous = new List<double>();
            var image = new List<double>();
            var heap = new List<double>();
            var allocated = new List<double>();
            var cpu = new List<double>();
            var containerdCpu = new List<double>();
            var fds = new List<double>();
            var threads = new List<double>();
            ProcSample last = cluster.Agent.Sample();
            MemoryBreakdown memory = MemoryBreakdown.Of(cluster.Agent.Pid);
            var gcCommitted = new List<double>();
            var gcPerMinute = new List<double>();
            var gcPauseMsPerMinute = new List<double>();
            for (var run = 0; run < o.Runs; run++)
            {
                var before = cluster.Agent.Sample();
                var containerdBefore = ProcSample.Of(containerdPid);
                var gcBefore = GcSample.Parse(await cluster.Agent.MetricsAsync());
                await Task.Delay(TimeSpan.FromSeconds(o.Window));
                last = cluster.Agent.Sample();
                containerdCpu.Add(ProcSample.Of(containerdPid).PercentOfCoreSince(containerdBefore));
                memory = MemoryBreakdown.Of(cluster.Agent.Pid);
                var gc = GcSample.Parse(await cluster.Agent.MetricsAsync());
                var seconds = (last.At - before.At).TotalSeconds;
                cpu.Add((last.CpuSeconds - before.CpuSeconds) / seconds * 60);
                rss.Add(last.RssBytes / 1048576.0);
                anonymous.Add(memory.AnonymousBytes / 1048576.0);
                image.Add(memory.ImageBytes / 1048576.0);
                heap.Add(gc.HeapBytes / 1048576.0);
                gcCommitted.Add(gc.CommittedBytes / 1048576.0);
                allocated.Add((gc.AllocatedBytes - gcBefore.AllocatedBytes) / seconds / 1000);
                gcPerMinute.Add((gc.Collections - gcBefore.Collections) / seconds * 60);
                gcPauseMsPerMinute.Add((gc.PauseSeconds - gcBefore.PauseSeconds) * 1000 / seconds * 60);
                fds.Add(last.Fds);
                threads.Add(last.Threads);
            }

            var rssS = Summary.Of(rss);
            var cpuS = Summary.Of(cpu);
            var percent = Summary.Of(cpu.Select(c => c / 60 * 100));
            var target = pods == 10
                ? $"RSS ≤ {RssTargetMb} MiB: {Report.Verdict(rssS.Median <= RssTargetMb)}; CPU ≤ {CpuTargetPercent}%: {Report.Verdict(percent.Median <= CpuTargetPercent)}"
                : $"CPU ≤ {CpuTargetPercent}%: {Report.Verdict(percent.Median <= CpuTargetPercent)}";
            report.Row(pods.ToString(CultureInfo.InvariantCulture), rssS.Show("0.0"), Summary.Of(anonymous).Show("0.0"), Summary.Of(image).Show("0.0"),
                Summary.Of(heap).Show("0.0"), Summary.Of(allocated).Show("0"), Report.Mb(last.PeakRssBytes), cpuS.Show("0.000"), percent.Show("0.00"),
                Summary.Of(containerdCpu).Show("0.00"), Summary.Of(fds).Show("0"), Summary.Of(threads).Show("0"), target);
            report.Data[$"pods{pods}"] = new JsonObject
            {
                ["rssMiB"] = rssS.Json(),
                ["anonymousMiB"] = Summary.Of(anonymous).Json(),
                ["binaryImageMiB"] = Summary.Of(image).Json(),
                ["sharedLibrariesMiB"] = memory.LibraryBytes / 1048576.0,
                ["executableBssMiB"] = memory.BssBytes / 1048576.0,
                ["mallocHeapMiB"] = memory.MallocHeapBytes / 1048576.0,
                ["gcCommittedMiB"] = Summary.Of(gcCommitted).Json(),
                ["gcHeapMiB"] = Summary.Of(heap).Json(),
                ["allocatedKBPerSecond"] = Summary.Of(allocated).Json(),
                ["gcCollectionsPerMinute"] = Summary.Of(gcPerMinute).Json(),
                ["gcPauseMsPerMinute"] = Summary.Of(gcPauseMsPerMinute).Json(),
                ["peakRssMiB"] = last.PeakRssBytes / 1048576.0,
                ["cpuSecondsPerMinute"] = cpuS.Json(),
                ["cpuPercentOfCore"] = percent.Json(),
                ["containerdCpuPercentOfCore"] = Summary.Of(containerdCpu).Json(),
                ["fds"] = Summary.Of(fds).Json(),
                ["threads"] = Summary.Of(threads).Json(),
                ["threadNames"] = new JsonObject([.. memory.Threads.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value))]),
            };
        }

        await AgentProc.EnsurePublishedAsync("linux-arm64");
        var arm = Path.Combine(ContainerdHost.RepoRoot, "artifacts", "publish", "linux-arm64", "edgekube-agent");
        var size = new FileInfo(arm).Length;
        var file = (await Run.ProcessAsync("file", ["-b", arm])).Output.Trim();
        var stripped = file.Contains("stripped", StringComparison.Ordinal) && !file.Contains("not stripped", StringComparison.Ordinal);
        report.Row("linux-arm64 binary", "", "", "", "", "", "", "", "", "", "", "", $"{Report.Mb(size)} MiB{(stripped ? " (stripped)" : " (NOT stripped)")}; ≤ {BinaryTargetMb} MiB: {Report.Verdict(size / 1048576.0 <= BinaryTargetMb)}");
        report.Data["arm64BinaryBytes"] = size;
        report.Data["arm64BinaryStripped"] = stripped;
        report.Note($"Each figure: median (min–max) of {o.Runs} windows of {o.Window} s, after the pods were Running and the agent had given back the pages their start touched, 30 s after their statuses last changed, and 5 s more (the first, with no pods, 45 s after the node was Ready). CPU is utime+stime of the agent process from /proc/PID/stat; 'containerd % of a core' is the same for the bench's containerd over the same windows (the CRI calls the agent makes cost it CPU too; the pods' shims are not counted); RSS and VmHWM from /proc/PID/status (VmHWM is the peak over the whole run, start-up included).");
        report.Note("RSS by where it is (/proc/PID/smaps at the end of the window): anonymous (GC heap, thread stacks, malloc) and the executable's own image (file-backed, clean pages of the binary that were touched; shared with the page cache and dropped first under memory pressure); shared libraries (libc, libm, ld.so) make up the rest. The JSON has more of the anonymous part: the executable's bss (executableBssMiB: in a NativeAOT binary mostly the type data rehydrated at start), malloc's heap, the GC's committed memory. GC heap: the managed heap after the last collection and allocated KB/s: managed allocation rate over the window, both from the agent's /metrics (GC.GetGCMemoryInfo, GC.GetTotalAllocatedBytes); the JSON also has the collections and the GC's pause time per minute of the window (GC.GetTotalPauseDuration), the CPU the GC settings cost.");
        report.Note("The agent runs the published NativeAOT binary (artifacts/publish/linux-x64) against the bench's own containerd; pods are busybox `sleep` started by `kubectl apply` through the master.");
        return report;
    }
}
