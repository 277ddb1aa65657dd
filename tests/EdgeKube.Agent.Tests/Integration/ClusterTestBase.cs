using EdgeKube.Agent.Tests.Fixtures;

namespace EdgeKube.Agent.Tests.Integration;

/// <summary>
/// A real edgekube-master (started with <see cref="MasterArgs"/>), one real agent joined with the
/// config that <c>node add</c> printed, the test containerd, and the real kubectl.
/// </summary>
public abstract class ClusterTestBase(ContainerdFixture containerd) : AgentTestBase(containerd)
{
    protected const string Node = "test-node";

    protected MasterProcess Master { get; private set; } = null!;

    /// <summary>The join config the node was started with.</summary>
    protected string JoinConfig { get; private set; } = string.Empty;

    protected virtual string[] MasterArgs => [];

    /// <summary>Runs before the master starts (an external broker, for one).</summary>
    protected virtual Task BeforeMasterAsync(MasterProcess master) => Task.CompletedTask;

    /// <summary>Runs after <c>node add</c>, before the agent starts in <paramref name="workDir"/>; returns extra agent flags.</summary>
    protected virtual Task<string[]> PrepareAgentAsync(string workDir) => Task.FromResult<string[]>([]);

    /// <summary>Appended to the join config (a <c>board:</c> section, for one).</summary>
    protected virtual string ExtraConfig => string.Empty;

    public override async Task InitializeAsync()
    {
        await RemoveAllManagedAsync();
        Master = new MasterProcess();
        await BeforeMasterAsync(Master);
        await Master.StartAsync(MasterArgs);
        JoinConfig = await Master.AddNodeAsync(Node);
        var workDir = Directory.CreateTempSubdirectory("edgekube-agent-").FullName;
        var extraArgs = await PrepareAgentAsync(workDir);
        var config = Path.Combine(workDir, "agent.yaml");
        File.WriteAllText(config, JoinConfig + ExtraConfig);
        Agent = NewAgent(workDir, ["--config", config, .. extraArgs]);
        await Agent.StartAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Master.DisposeAsync();
    }

    protected string Diagnostics => "\n--- master\n" + AgentProcess.Tail(Master.Log, 30) + "\n--- agent\n" + AgentProcess.Tail(Agent.Log, 30);

    protected Task WaitForNodeReadyAsync(TimeSpan? timeout = null) =>
        Eventually.Until(async () => (await Master.KubectlAsync("get", "node", Node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Output.Trim() == "True",
            timeout ?? TimeSpan.FromSeconds(60), () => "node never Ready" + Diagnostics);

    protected Task WaitForPhaseAsync(string pod, string phase) =>
        Eventually.Until(async () => (await Master.KubectlAsync("get", "pod", pod, "-o", "jsonpath={.status.phase}")).Output.Trim() == phase,
            TimeSpan.FromSeconds(90), () => $"pod {pod} never {phase}" + Diagnostics);

    protected Task WaitForPodGoneAsync(string pod) =>
        Eventually.Until(async () => (await Master.KubectlAsync("get", "pod", pod)).Output.Contains("NotFound", StringComparison.Ordinal),
            TimeSpan.FromSeconds(90), () => $"pod {pod} still in the API" + Diagnostics);

    protected async Task<string> ContainerIdAsync(string pod) =>
        (await Master.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")).Trim();

    /// <summary>A pod that prints a numbered line a second and ends at once on SIGTERM.</summary>
    protected string PodYaml(string name, string? image = null, string extra = "") => $$"""
        apiVersion: v1
        kind: Pod
        metadata:
          name: {{name}}
          labels: {app: {{name}}, tier: edge}
        spec:
          terminationGracePeriodSeconds: 2
          {{extra}}
          containers:
          - name: app
            image: "{{image ?? Image}}"
            command: [sh, -c, "trap 'exit 0' TERM; echo hello from {{name}}; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done"]
        """;

    protected string WriteManifest(string yaml)
    {
        var file = Path.Combine(Master.DataDir, Guid.NewGuid().ToString("N") + ".yaml");
        File.WriteAllText(file, yaml);
        return file;
    }

    protected async Task ApplyAsync(string yaml) => await Master.Kubectl("apply", "-f", WriteManifest(yaml));
}
