namespace EdgeKube.Agent.Runtime;

/// <summary>
/// The labels and annotations kubelet puts on CRI sandboxes and containers. Using the same keys lets
/// an agent that restarted find and adopt what it created, and lets the usual tools (crictl, ctr)
/// show our pods the way they show kubelet's.
/// </summary>
public static class RuntimeLabels
{
    public const string PodName = "io.kubernetes.pod.name";
    public const string PodNamespace = "io.kubernetes.pod.namespace";
    public const string PodUid = "io.kubernetes.pod.uid";
    public const string ContainerName = "io.kubernetes.container.name";

    /// <summary>Marks what edgekube-agent manages, so a shared containerd's other sandboxes are left alone.</summary>
    public const string ManagedBy = "edgekube.io/managed-by";
    public const string ManagedByValue = "edgekube-agent";

    public const string ContainerHash = "io.kubernetes.container.hash";
    public const string ContainerRestartCount = "io.kubernetes.container.restartCount";
    public const string ContainerTerminationMessagePath = "io.kubernetes.container.terminationMessagePath";
    public const string ContainerType = "edgekube.io/container-type";
    public const string PodTerminationGracePeriod = "io.kubernetes.pod.terminationGracePeriod";
    public const string ContainerImage = "edgekube.io/image";
}
