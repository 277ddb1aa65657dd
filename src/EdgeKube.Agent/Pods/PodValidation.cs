using System.Text.RegularExpressions;
using k8s.Models;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// Kubernetes' defaulting and validation for the parts of a v1 Pod that the agent acts on. A pod
/// that fails validation is never run; its reason goes to the log and into its status.
/// </summary>
public static partial class PodValidation
{
    public const string DefaultNamespace = "default";
    public const long DefaultTerminationGracePeriodSeconds = 30;

    private static readonly HashSet<string> SupportedFieldPaths =
    [
        "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
        "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs",
    ];

    /// <summary>Fills in the defaults the API server would (kubectl users rely on them).</summary>
    public static void ApplyDefaults(V1Pod pod)
    {
        pod.ApiVersion ??= "v1";
        pod.Kind ??= "Pod";
        pod.Metadata ??= new V1ObjectMeta();
        if (string.IsNullOrEmpty(pod.Metadata.NamespaceProperty))
        {
            pod.Metadata.NamespaceProperty = DefaultNamespace;
        }

        var spec = pod.Spec;
        if (spec is null)
        {
            return;
        }

        spec.RestartPolicy ??= "Always";
        spec.TerminationGracePeriodSeconds ??= DefaultTerminationGracePeriodSeconds;
        spec.DnsPolicy ??= "ClusterFirst";
        spec.SchedulerName ??= "default-scheduler";
        spec.EnableServiceLinks ??= true;
        foreach (var c in AllContainers(spec))
        {
            c.ImagePullPolicy ??= DefaultPullPolicy(c.Image);
            c.TerminationMessagePath ??= "/dev/termination-log";
            c.TerminationMessagePolicy ??= "File";
            foreach (var port in c.Ports ?? [])
            {
                port.Protocol ??= "TCP";
            }

            foreach (var probe in new[] { c.LivenessProbe, c.ReadinessProbe, c.StartupProbe })
            {
                if (probe is null)
                {
                    continue;
                }

                probe.TimeoutSeconds ??= 1;
                probe.PeriodSeconds ??= 10;
                probe.SuccessThreshold ??= 1;
                probe.FailureThreshold ??= 3;
                probe.InitialDelaySeconds ??= 0;
                if (probe.HttpGet is { } http)
                {
                    http.Path ??= "/";
                    http.Scheme ??= "HTTP";
                }
            }
        }

        foreach (var v in spec.Volumes ?? [])
        {
            if (v.HostPath is { } hp)
            {
                hp.Type ??= string.Empty;
            }
        }
    }

    /// <summary>kubelet's default: Always for ":latest" or no tag, IfNotPresent otherwise (digests included).</summary>
    public static string DefaultPullPolicy(string? image)
    {
        if (string.IsNullOrEmpty(image))
        {
            return "IfNotPresent";
        }

        if (image.Contains('@'))
        {
            return "IfNotPresent";
        }

        var lastSlash = image.LastIndexOf('/');
        var colon = image.IndexOf(':', lastSlash + 1);
        if (colon < 0)
        {
            return "Always";
        }

        return image[(colon + 1)..] == "latest" ? "Always" : "IfNotPresent";
    }

    /// <summary>Every problem found, one line each; empty when the pod can run.</summary>
    public static IReadOnlyList<string> Validate(V1Pod pod)
    {
        var errors = new List<string>();
        var meta = pod.Metadata;
        if (meta is null || string.IsNullOrEmpty(meta.Name))
        {
            errors.Add("metadata.name: Required value");
        }
        else if (!IsDns1123Subdomain(meta.Name))
        {
            errors.Add($"metadata.name: Invalid value \"{meta.Name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character");
        }

        if (meta?.NamespaceProperty is { } ns && !IsDns1123Label(ns))
        {
            errors.Add($"metadata.namespace: Invalid value \"{ns}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'");
        }

        var spec = pod.Spec;
        if (spec is null)
        {
            errors.Add("spec: Required value");
            return errors;
        }

        if (spec.Containers is null || spec.Containers.Count == 0)
        {
            errors.Add("spec.containers: Required value");
        }

        if (spec.RestartPolicy is not ("Always" or "OnFailure" or "Never"))
        {
            errors.Add($"spec.restartPolicy: Unsupported value: \"{spec.RestartPolicy}\": supported values: \"Always\", \"OnFailure\", \"Never\"");
        }

        if (spec.TerminationGracePeriodSeconds is < 0)
        {
            errors.Add("spec.terminationGracePeriodSeconds: must be greater than or equal to 0");
        }

        var volumes = new HashSet<string>(StringComparer.Ordinal);
        var volumeList = spec.Volumes ?? [];
        for (var i = 0; i < volumeList.Count; i++)
        {
            var v = volumeList[i];
            var field = $"spec.volumes[{i}]";
            if (string.IsNullOrEmpty(v.Name) || !IsDns1123Label(v.Name))
            {
                errors.Add($"{field}.name: Invalid value \"{v.Name}\"");
            }
            else if (!volumes.Add(v.Name))
            {
                errors.Add($"{field}.name: Duplicate value \"{v.Name}\"");
            }

            var sources = (v.EmptyDir is null ? 0 : 1) + (v.HostPath is null ? 0 : 1);
            if (sources == 0)
            {
                errors.Add($"{field}: only emptyDir and hostPath volumes are supported by edgekube-agent");
            }
            else if (sources > 1)
            {
                errors.Add($"{field}: may not specify more than 1 volume type");
            }

            if (v.HostPath is { } hp)
            {
                if (string.IsNullOrEmpty(hp.Path) || !hp.Path.StartsWith('/'))
                {
                    errors.Add($"{field}.hostPath.path: must be an absolute path");
                }

                if (hp.Type is not (null or "" or "DirectoryOrCreate" or "Directory" or "FileOrCreate" or "File" or "Socket" or "CharDevice" or "BlockDevice"))
                {
                    errors.Add($"{field}.hostPath.type: Unsupported value: \"{hp.Type}\"");
                }
            }

            if (v.EmptyDir is { Medium: { } medium } && medium is not ("" or "Memory"))
            {
                errors.Add($"{field}.emptyDir.medium: Unsupported value: \"{medium}\"");
            }
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        ValidateContainers(spec.InitContainers, "spec.initContainers", names, volumes, errors);
        ValidateContainers(spec.Containers, "spec.containers", names, volumes, errors);
        return errors;
    }

    private static void ValidateContainers(IList<V1Container>? containers, string path, HashSet<string> names, HashSet<string> volumes, List<string> errors)
    {
        if (containers is null)
        {
            return;
        }

        for (var i = 0; i < containers.Count; i++)
        {
            var c = containers[i];
            var field = $"{path}[{i}]";
            if (string.IsNullOrEmpty(c.Name))
            {
                errors.Add($"{field}.name: Required value");
            }
            else if (!IsDns1123Label(c.Name))
            {
                errors.Add($"{field}.name: Invalid value \"{c.Name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'");
            }
            else if (!names.Add(c.Name))
            {
                errors.Add($"{field}.name: Duplicate value \"{c.Name}\"");
            }

            if (string.IsNullOrWhiteSpace(c.Image))
            {
                errors.Add($"{field}.image: Required value");
            }

            if (c.ImagePullPolicy is not (null or "Always" or "IfNotPresent" or "Never"))
            {
                errors.Add($"{field}.imagePullPolicy: Unsupported value: \"{c.ImagePullPolicy}\": supported values: \"Always\", \"IfNotPresent\", \"Never\"");
            }

            var ports = c.Ports ?? [];
            for (var p = 0; p < ports.Count; p++)
            {
                var port = ports[p];
                if (port.ContainerPort is < 1 or > 65535)
                {
                    errors.Add($"{field}.ports[{p}].containerPort: Invalid value: {port.ContainerPort}: must be between 1 and 65535, inclusive");
                }

                if (port.HostPort is < 0 or > 65535)
                {
                    errors.Add($"{field}.ports[{p}].hostPort: Invalid value: {port.HostPort}: must be between 1 and 65535, inclusive");
                }

                if (port.Protocol is not (null or "TCP" or "UDP" or "SCTP"))
                {
                    errors.Add($"{field}.ports[{p}].protocol: Unsupported value: \"{port.Protocol}\"");
                }
            }

            var env = c.Env ?? [];
            for (var e = 0; e < env.Count; e++)
            {
                var var = env[e];
                if (string.IsNullOrEmpty(var.Name))
                {
                    errors.Add($"{field}.env[{e}].name: Required value");
                }

                if (var.ValueFrom is { } from)
                {
                    if (from.FieldRef is { } fieldRef)
                    {
                        if (!SupportedFieldPaths.Contains(fieldRef.FieldPath ?? string.Empty)
                            && !(fieldRef.FieldPath ?? string.Empty).StartsWith("metadata.labels['", StringComparison.Ordinal)
                            && !(fieldRef.FieldPath ?? string.Empty).StartsWith("metadata.annotations['", StringComparison.Ordinal))
                        {
                            errors.Add($"{field}.env[{e}].valueFrom.fieldRef.fieldPath: Unsupported value: \"{fieldRef.FieldPath}\"");
                        }
                    }
                    else if (from.ResourceFieldRef is null)
                    {
                        errors.Add($"{field}.env[{e}].valueFrom: only fieldRef and resourceFieldRef are supported by edgekube-agent");
                    }
                }
            }

            var mounts = c.VolumeMounts ?? [];
            for (var m = 0; m < mounts.Count; m++)
            {
                var mount = mounts[m];
                if (!volumes.Contains(mount.Name ?? string.Empty))
                {
                    errors.Add($"{field}.volumeMounts[{m}].name: Not found: \"{mount.Name}\"");
                }

                if (string.IsNullOrEmpty(mount.MountPath))
                {
                    errors.Add($"{field}.volumeMounts[{m}].mountPath: Required value");
                }
            }

            ValidateResources(c.Resources, field + ".resources", errors);
            ValidateProbe(c.LivenessProbe, field + ".livenessProbe", errors);
            ValidateProbe(c.ReadinessProbe, field + ".readinessProbe", errors);
            ValidateProbe(c.StartupProbe, field + ".startupProbe", errors);
        }
    }

    private static void ValidateResources(V1ResourceRequirements? resources, string field, List<string> errors)
    {
        foreach (var (kind, list) in new[] { ("limits", resources?.Limits), ("requests", resources?.Requests) })
        {
            if (list is null)
            {
                continue;
            }

            foreach (var (name, quantity) in list)
            {
                try
                {
                    if (quantity is null || quantity.ToDecimal() < 0)
                    {
                        errors.Add($"{field}.{kind}[{name}]: must be greater than or equal to 0");
                    }
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
                {
                    errors.Add($"{field}.{kind}[{name}]: Invalid value: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
                }
            }
        }
    }

    private static void ValidateProbe(V1Probe? probe, string field, List<string> errors)
    {
        if (probe is null)
        {
            return;
        }

        var handlers = (probe.Exec is null ? 0 : 1) + (probe.HttpGet is null ? 0 : 1) + (probe.TcpSocket is null ? 0 : 1) + (probe.Grpc is null ? 0 : 1);
        if (handlers == 0)
        {
            errors.Add($"{field}: must specify a handler type");
        }
        else if (handlers > 1)
        {
            errors.Add($"{field}: may not specify more than 1 handler type");
        }

        if (probe.Grpc is not null)
        {
            errors.Add($"{field}.grpc: gRPC probes are not supported by edgekube-agent");
        }

        if (probe.PeriodSeconds is < 1 || probe.TimeoutSeconds is < 1 || probe.FailureThreshold is < 1 || probe.SuccessThreshold is < 1 || probe.InitialDelaySeconds is < 0)
        {
            errors.Add($"{field}: periodSeconds, timeoutSeconds, successThreshold and failureThreshold must be at least 1, initialDelaySeconds at least 0");
        }

        if (probe.HttpGet?.Port is { } port && !IsValidPort(port))
        {
            errors.Add($"{field}.httpGet.port: Invalid value");
        }

        if (probe.TcpSocket?.Port is { } tcpPort && !IsValidPort(tcpPort))
        {
            errors.Add($"{field}.tcpSocket.port: Invalid value");
        }
    }

    private static bool IsValidPort(IntOrString port) =>
        int.TryParse(port.Value, out var n) ? n is >= 1 and <= 65535 : IsDns1123Label(port.Value ?? string.Empty) && port.Value!.Length <= 15;

    /// <summary>Init containers then app containers.</summary>
    public static IEnumerable<V1Container> AllContainers(V1PodSpec spec) =>
        (spec.InitContainers ?? []).Concat(spec.Containers ?? []);

    public static bool IsDns1123Label(string value) => value.Length <= 63 && Dns1123Label().IsMatch(value);

    public static bool IsDns1123Subdomain(string value) => value.Length <= 253 && Dns1123Subdomain().IsMatch(value);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Dns1123Label();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Dns1123Subdomain();
}
