using static EdgeKube.Master.Api.Patching.PatchField;

namespace EdgeKube.Master.Api.Patching;

/// <summary>
/// The patchStrategy/patchMergeKey struct tags of the built-in kinds, from k8s.io/api core/v1, apps/v1 and
/// batch/v1 types.go and apimachinery's ObjectMeta. Only fields that differ from the default are listed.
/// </summary>
/// <remarks>
/// Lists absent here are atomic, as upstream: among them spec.tolerations, containers' command/args/envFrom,
/// status.containerStatuses and Node spec.taints (no patchStrategy, <c>+listType=atomic</c>), so
/// <c>kubectl taint</c> sends the node's whole new taint list. Fields tagged retainKeys (PodSpec volumes and
/// resourceClaims, Deployment spec.strategy) need no entry for that: the <c>$retainKeys</c> directive is
/// honoured from the patch alone.
/// </remarks>
internal static class StrategicMergeSchemas
{
    private static readonly PatchType ObjectMeta = new(
        ("finalizers", MergeSet),
        ("ownerReferences", MergeByKey("uid")));

    private static readonly PatchType Container = new(
        ("ports", MergeByKey("containerPort")),
        ("env", MergeByKey("name")),
        ("volumeMounts", MergeByKey("mountPath")),
        ("volumeDevices", MergeByKey("devicePath")));

    private static readonly PatchType PodSpec = new(
        ("volumes", MergeByKey("name")),
        ("initContainers", MergeByKey("name", Container)),
        ("containers", MergeByKey("name", Container)),
        ("ephemeralContainers", MergeByKey("name", Container)),
        ("imagePullSecrets", MergeByKey("name")),
        ("hostAliases", MergeByKey("ip")),
        ("topologySpreadConstraints", MergeByKey("topologyKey")),
        ("schedulingGates", MergeByKey("name")),
        ("resourceClaims", MergeByKey("name")));

    private static readonly PatchType PodStatus = new(
        ("conditions", MergeByKey("type")),
        ("podIPs", MergeByKey("ip")),
        ("hostIPs", MergeByKey("ip")),
        ("resourceClaimStatuses", MergeByKey("name")));

    private static readonly PatchType PodTemplateSpec = new(
        ("metadata", Struct(ObjectMeta)),
        ("spec", Struct(PodSpec)));

    // Deployment, ReplicaSet, DaemonSet, StatefulSet, Job and ReplicationController specs all hold their pods here.
    private static readonly PatchType WorkloadSpec = new(("template", Struct(PodTemplateSpec)));

    private static readonly PatchType ConditionsByType = new(("conditions", MergeByKey("type")));

    private static readonly PatchType Workload = Kind(WorkloadSpec, ConditionsByType);

    private static readonly PatchType CronJobSpec = new(
        ("jobTemplate", Struct(new PatchType(("metadata", Struct(ObjectMeta)), ("spec", Struct(WorkloadSpec))))));

    private static readonly PatchType NodeSpec = new(("podCIDRs", MergeSet));

    private static readonly PatchType NodeStatus = new(
        ("conditions", MergeByKey("type")),
        ("addresses", MergeByKey("type")));

    private static readonly PatchType ServiceSpec = new(("ports", MergeByKey("port")));

    private static readonly PatchType MetadataOnly = Kind();

    private static readonly Dictionary<(string Group, string Kind), PatchType> Kinds = new()
    {
        [("", "Pod")] = Kind(PodSpec, PodStatus),
        [("", "PodTemplate")] = new(("metadata", Struct(ObjectMeta)), ("template", Struct(PodTemplateSpec))),
        [("", "ReplicationController")] = Workload,
        [("apps", "Deployment")] = Workload,
        [("apps", "ReplicaSet")] = Workload,
        [("apps", "DaemonSet")] = Workload,
        [("apps", "StatefulSet")] = Workload,
        [("batch", "Job")] = Workload,
        [("batch", "CronJob")] = Kind(CronJobSpec),
        [("", "Node")] = Kind(NodeSpec, NodeStatus),
        [("", "Service")] = Kind(ServiceSpec, ConditionsByType),
        [("", "Namespace")] = Kind(status: ConditionsByType),
        [("", "PersistentVolumeClaim")] = Kind(status: ConditionsByType),
        [("", "ServiceAccount")] = new(("metadata", Struct(ObjectMeta)), ("secrets", MergeByKey("name"))),
        [("", "ConfigMap")] = MetadataOnly,
        [("", "Secret")] = MetadataOnly,
        [("", "Endpoints")] = MetadataOnly,
        [("", "Event")] = MetadataOnly,
        [("coordination.k8s.io", "Lease")] = MetadataOnly,
    };

    /// <summary>
    /// The schema for a kind, or null when it has none (every list then atomic). Looked up by API group and kind:
    /// the tags are the same in every version a group serves.
    /// </summary>
    public static PatchType? For(string apiVersion, string kind)
    {
        int slash = (apiVersion ?? "").IndexOf('/', StringComparison.Ordinal);
        string group = slash < 0 ? "" : apiVersion![..slash];
        return Kinds.GetValueOrDefault((group, kind ?? ""));
    }

    private static PatchType Kind(PatchType? spec = null, PatchType? status = null)
    {
        var fields = new List<(string, PatchField)> { ("metadata", Struct(ObjectMeta)) };
        if (spec is not null)
        {
            fields.Add(("spec", Struct(spec)));
        }
        if (status is not null)
        {
            fields.Add(("status", Struct(status)));
        }
        return new PatchType([.. fields]);
    }
}
