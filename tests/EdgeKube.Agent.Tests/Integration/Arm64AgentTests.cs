using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// The published linux-arm64 NativeAOT agent (what goes onto a Raspberry Pi), run here under
/// qemu-aarch64-static: it starts, joins a real master with the config <c>node add</c> printed, reaches the
/// test containerd over CRI, and kubectl shows the node Ready as an arm64 node.
/// scripts/test.sh publishes before the tests run; when the binary is not there this test publishes it.
/// </summary>
[Collection("containerd")]
public sealed class Arm64AgentTests(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    private const string Node = "arm64-node";

    public override Task InitializeAsync() => RemoveAllManagedAsync();

    private static string RepoRoot()
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

    private static async Task<string> PublishedArm64AgentAsync()
    {
        var root = RepoRoot();
        var binary = Path.Combine(root, "artifacts", "publish", "linux-arm64", "edgekube-agent");
        if (!File.Exists(binary))
        {
            var (code, output) = await MasterProcess.RunAsync("bash", [Path.Combine(root, "scripts", "publish.sh"), "linux-arm64"], timeout: TimeSpan.FromMinutes(40));
            Assert.True(code == 0, "scripts/publish.sh linux-arm64 failed:\n" + AgentProcess.Tail(output, 60));
        }

        var (fileCode, fileOutput) = await MasterProcess.RunAsync("file", ["-b", binary]);
        Assert.True(fileCode == 0, fileOutput);
        Assert.Contains("ELF 64-bit LSB", fileOutput);
        Assert.Contains("ARM aarch64", fileOutput);
        Assert.Contains("stripped", fileOutput);
        return binary;
    }

    private static string[] Qemu(string binary) => ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", binary];

    [Fact]
    public async Task Published_arm64_agent_prints_its_version_under_qemu_then_joins_a_master_and_its_node_is_Ready()
    {
        var binary = await PublishedArm64AgentAsync();
        var qemu = Qemu(binary);
        var (code, version) = await MasterProcess.RunAsync(qemu[0], [.. qemu[1..], "--version"]);
        Assert.True(code == 0, version);
        Assert.Matches(@"^\d+\.\d+\.\d+", version.Trim());

        await using var master = new MasterProcess();
        await master.StartAsync();
        var join = await master.AddNodeAsync(Node);
        var workDir = Directory.CreateTempSubdirectory("edgekube-arm64-agent-").FullName;
        var config = Path.Combine(workDir, "agent.yaml");
        File.WriteAllText(config, join);
        var agent = new AgentProcess(Containerd.SocketPath, workDir, Node) { Command = qemu, ExtraArgs = ["--config", config] };
        await using var _ = agent;

        // A static pod: its uid is a hash of the manifest, and the lease a digest of the status, both computed on a
        // machine with no arm64 libssl (the package only recommends it, for TLS), so neither may need OpenSSL.
        agent.WriteManifest("static.yaml", $"apiVersion: v1\nkind: Pod\nmetadata: {{name: static}}\nspec:\n  containers: [{{name: app, image: {Image}, command: [sleep, '3600']}}]\n");
        await agent.StartAsync();

        await Eventually.Until(async () => (await master.KubectlAsync("get", "node", Node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Output.Trim() == "True",
            TimeSpan.FromSeconds(90), () => "arm64 node never Ready\n" + AgentProcess.Tail(master.Log, 30) + "\n" + AgentProcess.Tail(agent.Log, 30));
        var nodes = await master.Kubectl("get", "nodes", "-o", "wide");
        Assert.Matches($@"(?m)^{Node}\s+Ready\s+", nodes);
        Assert.Equal("arm64", (await master.Kubectl("get", "node", Node, "-o", "jsonpath={.metadata.labels.kubernetes\\.io/arch}")).Trim());
        Assert.Equal("arm64", (await master.Kubectl("get", "node", Node, "-o", "jsonpath={.status.nodeInfo.architecture}")).Trim());
        Assert.Matches(@"containerd://\S+", await master.Kubectl("get", "node", Node, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}"));
        Assert.Contains("Connected to containerd", agent.Log);
        await agent.WaitForPodAsync("static", IsRunning, TimeSpan.FromSeconds(90), "Running");
        Assert.Matches("^[0-9a-f]{32}$", (await agent.PodsAsync()).Items.Single(p => p.Metadata.Name == "static-" + Node).Metadata.Uid);

        await agent.StopAsync();
        Assert.Equal(0, agent.ExitCode);
    }
}
