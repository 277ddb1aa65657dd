using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using EdgeKube.Testing;

namespace EdgeKube.Bench.Infra;

/// <summary>A real containerd, a real master and one real NativeAOT agent joined to it (through a counting proxy).</summary>
public sealed class Cluster : IAsyncDisposable
{
    public const string Node = "bench-node";

    private Cluster(ContainerdHost containerd, MasterProc master, TcpProxy proxy, AgentProc agent)
    {
        Containerd = containerd;
        Master = master;
        Proxy = proxy;
        Agent = agent;
    }

    public ContainerdHost Containerd { get; }

    public MasterProc Master { get; }

    public TcpProxy Proxy { get; }

    public AgentProc Agent { get; private set; }

    /// <param name="logLevel">Of the master and the agent: Debug for the trace scenario's timestamps of each hop.</param>
    public static async Task<Cluster> StartAsync(double gracePeriodSeconds = 40, int? keepAliveSeconds = null, string logLevel = "Information")
    {
        await AgentProc.EnsurePublishedAsync("linux-x64");
        var containerd = new ContainerdHost();
        await containerd.InitializeAsync();
        var master = new MasterProc();
        await master.StartAsync(gracePeriodSeconds, logLevel);
        var join = await master.AddNodeAsync(Node);
        var proxy = new TcpProxy(master.MqttPort);
        var agent = new AgentProc(join, containerd.SocketPath, proxy.Port, keepAliveSeconds, logLevel);
        agent.Start();
        var cluster = new Cluster(containerd, master, proxy, agent);
        await cluster.WaitNodeReadyAsync(true, TimeSpan.FromSeconds(120));
        return cluster;
    }

    /// <summary>A new agent process on the same state directory (after a kill).</summary>
    public void RestartAgent() => Agent.Start();

    public async Task<bool> NodeReadyAsync()
    {
        try
        {
            var node = await Master.GetAsync("/api/v1/nodes/" + Node);
            return Ready(node);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    public static bool Ready(JsonObject node) =>
        node["status"]?["conditions"] is JsonArray c && c.Any(x => x?["type"]?.GetValue<string>() == "Ready" && x["status"]?.GetValue<string>() == "True");

    public async Task WaitNodeReadyAsync(bool ready, TimeSpan timeout)
    {
        try
        {
            await Run.UntilAsync(async () => await NodeReadyAsync() == ready, timeout, $"node {Node} Ready={ready}");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nagent log:\n{Agent.Log}\nmaster log:\n{Master.Log}");
        }
    }

    public static string PodsYaml(string prefix, int count, string? command = null, string restartPolicy = "Always")
    {
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"""
                ---
                apiVersion: v1
                kind: Pod
                metadata:
                  name: {prefix}-{i}
                  namespace: default
                spec:
                  terminationGracePeriodSeconds: 1
                  restartPolicy: {restartPolicy}
                  containers:
                  - name: app
                    image: {ContainerdHost.BusyboxImageName}
                    imagePullPolicy: IfNotPresent
                    command: ["sh", "-c", "{command ?? "exec sleep 36000"}"]

                """);
        }

        return sb.ToString();
    }

    public Task<string> ApplyAsync(string yaml) => Run.ProcessAsync("kubectl", ["--kubeconfig", Master.Kubeconfig, "apply", "-f", "-"], yaml)
        .ContinueWith(t => t.Result.Code == 0 ? t.Result.Output : throw new InvalidOperationException("kubectl apply failed: " + t.Result.Output), TaskScheduler.Default);

    public static string Phase(JsonObject pod) => pod["status"]?["phase"]?.GetValue<string>() ?? "";

    public async Task<int> RunningAsync(string prefix)
    {
        var list = await Master.GetAsync("/api/v1/namespaces/default/pods");
        return list["items"]!.AsArray().Count(p => p!["metadata"]!["name"]!.GetValue<string>().StartsWith(prefix + "-", StringComparison.Ordinal) && Phase(p.AsObject()) == "Running");
    }

    public async Task WaitRunningAsync(string prefix, int count, TimeSpan timeout)
    {
        try
        {
            await Run.UntilAsync(async () => await RunningAsync(prefix) >= count, timeout, $"{count} pods {prefix}-* Running", 250);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nagent log:\n{Agent.Log}\nmaster log:\n{Master.Log}");
        }
    }

    /// <summary>Deletes the pods and waits until the API no longer lists them (the node has stopped them).</summary>
    public async Task DeleteAllPodsAsync(TimeSpan timeout)
    {
        await Master.Kubectl("delete", "pods", "--all", "-n", "default", "--wait=false");
        await Run.UntilAsync(async () => (await Master.GetAsync("/api/v1/namespaces/default/pods"))["items"]!.AsArray().Count == 0, timeout, "pods to be gone", 250);
    }

    public async ValueTask DisposeAsync()
    {
        await Agent.DisposeAsync();
        await Proxy.DisposeAsync();
        await Master.DisposeAsync();
        await Containerd.DisposeAsync();
    }
}
