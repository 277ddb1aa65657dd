using static EdgeKube.Master.Api.Protobuf.KubeProtobuf;

namespace EdgeKube.Master.Api.Protobuf;

/// <summary>
/// Field numbers from k8s.io/api core/v1, apps/v1, batch/v1 and apimachinery meta/v1 generated.proto, for the
/// fields kubectl's create commands fill in (and the common pod spec fields a typed client may send).
/// </summary>
internal static class Schemas
{
    // Strings, and the ints and bools marked "z", are Go non-pointer fields: zero means unset. I and Bp are pointers, kept when zero.
    private static Field S(string name) => new(name, Shape.String, OmitZero: true);

    private static Field Strings(string name) => new(name, Shape.String, Repeated: true);

    private static Field I(string name) => new(name, Shape.Int);

    private static Field Iz(string name) => new(name, Shape.Int, OmitZero: true);

    private static Field B(string name) => new(name, Shape.Bool, OmitZero: true);

    private static Field Bp(string name) => new(name, Shape.Bool);

    private static Field M(string name, Message sub, bool repeated = false) => new(name, Shape.Message, repeated, sub);

    private static Field Map(string name) => new(name, Shape.Map);

    private static readonly Message Empty = new();

    private static readonly Message OwnerReference = new(
        (1, S("kind")), (3, S("name")), (4, S("uid")), (5, S("apiVersion")), (6, Bp("controller")), (7, Bp("blockOwnerDeletion")));

    private static readonly Message ObjectMeta = new(
        (1, S("name")), (2, S("generateName")), (3, S("namespace")), (4, S("selfLink")), (5, S("uid")), (6, S("resourceVersion")),
        (7, Iz("generation")), (8, new Field("creationTimestamp", Shape.Time)), (9, new Field("deletionTimestamp", Shape.Time)),
        (10, I("deletionGracePeriodSeconds")), (11, Map("labels")), (12, Map("annotations")),
        (13, M("ownerReferences", OwnerReference, repeated: true)), (14, Strings("finalizers")));

    private static readonly Message LabelSelectorRequirement = new((1, S("key")), (2, S("operator")), (3, Strings("values")));

    private static readonly Message LabelSelector = new((1, Map("matchLabels")), (2, M("matchExpressions", LabelSelectorRequirement, repeated: true)));

    private static readonly Message ContainerPort = new((1, S("name")), (2, Iz("hostPort")), (3, Iz("containerPort")), (4, S("protocol")), (5, S("hostIP")));

    private static readonly Message EnvVar = new((1, S("name")), (2, S("value")));

    private static readonly Message ResourceRequirements = new((1, new Field("limits", Shape.QuantityMap)), (2, new Field("requests", Shape.QuantityMap)));

    private static readonly Message VolumeMount = new((1, S("name")), (2, B("readOnly")), (3, S("mountPath")), (4, S("subPath")));

    private static readonly Message Container = new(
        (1, S("name")), (2, S("image")), (3, Strings("command")), (4, Strings("args")), (5, S("workingDir")),
        (6, M("ports", ContainerPort, repeated: true)), (7, M("env", EnvVar, repeated: true)), (8, M("resources", ResourceRequirements)),
        (9, M("volumeMounts", VolumeMount, repeated: true)), (13, S("terminationMessagePath")), (14, S("imagePullPolicy")),
        (16, B("stdin")), (17, B("stdinOnce")), (18, B("tty")), (20, S("terminationMessagePolicy")));

    private static readonly Message Toleration = new((1, S("key")), (2, S("operator")), (3, S("value")), (4, S("effect")), (5, I("tolerationSeconds")));

    private static readonly Message PodSpec = new(
        (2, M("containers", Container, repeated: true)), (3, S("restartPolicy")), (4, I("terminationGracePeriodSeconds")),
        (5, I("activeDeadlineSeconds")), (6, S("dnsPolicy")), (7, Map("nodeSelector")), (8, S("serviceAccountName")),
        (9, S("serviceAccount")), (10, S("nodeName")), (11, B("hostNetwork")), (12, B("hostPID")), (13, B("hostIPC")),
        (14, M("securityContext", Empty)), (16, S("hostname")), (17, S("subdomain")), (19, S("schedulerName")), (20, M("initContainers", Container, repeated: true)),
        (22, M("tolerations", Toleration, repeated: true)), (24, S("priorityClassName")), (25, I("priority")),
        (30, Bp("enableServiceLinks")), (31, S("preemptionPolicy")));

    private static readonly Message PodTemplateSpec = new((1, M("metadata", ObjectMeta)), (2, M("spec", PodSpec)));

    private static readonly Message RollingUpdateDeployment = new((1, new Field("maxUnavailable", Shape.IntOrString)), (2, new Field("maxSurge", Shape.IntOrString)));

    private static readonly Message DeploymentStrategy = new((1, S("type")), (2, M("rollingUpdate", RollingUpdateDeployment)));

    private static readonly Message DeploymentSpec = new(
        (1, I("replicas")), (2, M("selector", LabelSelector)), (3, M("template", PodTemplateSpec)), (4, M("strategy", DeploymentStrategy)),
        (5, Iz("minReadySeconds")), (6, I("revisionHistoryLimit")), (7, B("paused")), (9, I("progressDeadlineSeconds")));

    private static readonly Message ReplicaSetSpec = new((1, I("replicas")), (2, M("selector", LabelSelector)), (3, M("template", PodTemplateSpec)), (4, Iz("minReadySeconds")));

    private static readonly Message DaemonSetSpec = new((1, M("selector", LabelSelector)), (2, M("template", PodTemplateSpec)), (4, Iz("minReadySeconds")), (6, I("revisionHistoryLimit")));

    private static readonly Message JobSpec = new(
        (1, I("parallelism")), (2, I("completions")), (3, I("activeDeadlineSeconds")), (4, M("selector", LabelSelector)),
        (5, Bp("manualSelector")), (6, M("template", PodTemplateSpec)), (7, I("backoffLimit")), (8, I("ttlSecondsAfterFinished")),
        (9, S("completionMode")), (10, Bp("suspend")), (14, S("podReplacementPolicy")));

    private static readonly Message NamespaceSpec = new((1, Strings("finalizers")));

    // Status is the server's: whatever a client sends there is not read.
    private static Message Kind(Message spec) => new((1, M("metadata", ObjectMeta)), (2, M("spec", spec)), (3, new Field("status", Shape.Ignored)));

    /// <summary>The kinds accepted as protobuf, by API group and kind. Status is taken as empty (the server sets it).</summary>
    public static readonly Dictionary<(string Group, string Kind), Message> Kinds = new()
    {
        [("", "Namespace")] = Kind(NamespaceSpec),
        [("", "Pod")] = Kind(PodSpec),
        [("apps", "Deployment")] = Kind(DeploymentSpec),
        [("apps", "ReplicaSet")] = Kind(ReplicaSetSpec),
        [("apps", "DaemonSet")] = Kind(DaemonSetSpec),
        [("batch", "Job")] = Kind(JobSpec),
        [("meta.k8s.io", "DeleteOptions")] = new((1, I("gracePeriodSeconds")), (3, Bp("orphanDependents")), (4, S("propagationPolicy")), (5, Strings("dryRun"))),
        [("", "DeleteOptions")] = new((1, I("gracePeriodSeconds")), (3, Bp("orphanDependents")), (4, S("propagationPolicy")), (5, Strings("dryRun"))),
    };
}
