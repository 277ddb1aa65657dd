using System.Globalization;
using System.Text;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Runtime;
using k8s.Models;

namespace EdgeKube.Agent.Pods;

/// <summary>A container's configuration could not be built (kubelet's CreateContainerConfigError).</summary>
public sealed class ContainerConfigException(string message) : Exception(message);

/// <summary>Where the agent keeps per-pod files on the node.</summary>
/// <param name="PodsDirectory">Volumes and per-pod files: <c>{state-dir}/pods</c>.</param>
/// <param name="PodLogsDirectory">Container logs, as kubelet's <c>/var/log/pods</c>.</param>
public sealed record NodeLayout(string NodeName, string PodsDirectory, string PodLogsDirectory, long MemoryCapacityBytes)
{
    public string PodDirectory(string uid) => Path.Combine(PodsDirectory, uid);

    /// <summary>Extended resources that hand device nodes to the containers requesting them ("HOST[:CONTAINER]" paths).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Devices { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    public string PodLogDirectory(V1Pod pod) =>
        Path.Combine(PodLogsDirectory, $"{pod.Namespace()}_{pod.Name()}_{pod.Uid()}");
}

/// <summary>
/// Turns a v1 Pod into CRI sandbox and container configs the way kubelet's kuberuntime does:
/// labels for adoption, port mappings, namespaces, cgroup resources, mounts, env with $(VAR) expansion.
/// Pure apart from creating volume directories on the node.
/// </summary>
public sealed class RuntimeConfigBuilder(NodeLayout layout)
{
    private const long CpuPeriod = 100_000;
    private const long MinShares = 2;
    private const long MinQuota = 1_000;

    public NodeLayout Layout => layout;

    public PodSandboxConfig BuildSandboxConfig(V1Pod pod, uint attempt)
    {
        var spec = pod.Spec;
        var hostNetwork = spec.HostNetwork ?? false;
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = pod.Name(), Namespace = pod.Namespace(), Uid = pod.Uid(), Attempt = attempt },
            Hostname = hostNetwork ? string.Empty : TruncateHostname(spec.Hostname ?? pod.Name()),
            LogDirectory = layout.PodLogDirectory(pod),
            Linux = new LinuxPodSandboxConfig
            {
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = NamespaceOptions(spec),
                    Privileged = PodValidation.AllContainers(spec).Any(c => c.SecurityContext?.Privileged ?? false),
                },
            },
        };

        foreach (var (k, v) in pod.Metadata.Labels ?? new Dictionary<string, string>())
        {
            config.Labels[k] = v;
        }

        config.Labels[RuntimeLabels.PodName] = pod.Name();
        config.Labels[RuntimeLabels.PodNamespace] = pod.Namespace();
        config.Labels[RuntimeLabels.PodUid] = pod.Uid();
        config.Labels[RuntimeLabels.ManagedBy] = RuntimeLabels.ManagedByValue;
        foreach (var (k, v) in pod.Metadata.Annotations ?? new Dictionary<string, string>())
        {
            config.Annotations[k] = v;
        }

        foreach (var c in spec.Containers)
        {
            foreach (var port in c.Ports ?? [])
            {
                if (port.HostPort is > 0 && !hostNetwork)
                {
                    config.PortMappings.Add(new PortMapping
                    {
                        ContainerPort = port.ContainerPort,
                        HostPort = port.HostPort.Value,
                        HostIp = port.HostIP ?? string.Empty,
                        Protocol = port.Protocol switch { "UDP" => Cri.V1.Protocol.Udp, "SCTP" => Cri.V1.Protocol.Sctp, _ => Cri.V1.Protocol.Tcp },
                    });
                }
            }
        }

        return config;
    }

    /// <summary>Builds one container's config; creates its volume directories. Throws <see cref="ContainerConfigException"/>.</summary>
    public ContainerConfig BuildContainerConfig(V1Pod pod, V1Container container, string imageRef, int restartCount, string? podIp, bool isInit)
    {
        var spec = pod.Spec;
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = container.Name, Attempt = (uint)restartCount },
            Image = new ImageSpec { Image = imageRef, UserSpecifiedImage = container.Image },
            WorkingDir = container.WorkingDir ?? string.Empty,
            LogPath = Path.Combine(container.Name, restartCount.ToString(CultureInfo.InvariantCulture) + ".log"),
            Stdin = container.Stdin ?? false,
            StdinOnce = container.StdinOnce ?? false,
            Tty = container.Tty ?? false,
            Linux = new LinuxContainerConfig
            {
                Resources = BuildResources(spec, container),
                SecurityContext = BuildSecurityContext(spec, container),
            },
        };

        var env = BuildEnvironment(pod, container, podIp);
        foreach (var (name, value) in env)
        {
            config.Envs.Add(new KeyValue { Key = name, Value = value });
        }

        var lookup = env.GroupBy(e => e.Name).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal);
        config.Command.AddRange((container.Command ?? []).Select(s => Expand(s, lookup)));
        config.Args.AddRange((container.Args ?? []).Select(s => Expand(s, lookup)));
        config.Mounts.AddRange(BuildMounts(pod, container));
        config.Devices.AddRange(BuildDevices(container));

        config.Labels[RuntimeLabels.PodName] = pod.Name();
        config.Labels[RuntimeLabels.PodNamespace] = pod.Namespace();
        config.Labels[RuntimeLabels.PodUid] = pod.Uid();
        config.Labels[RuntimeLabels.ContainerName] = container.Name;
        config.Labels[RuntimeLabels.ManagedBy] = RuntimeLabels.ManagedByValue;
        config.Annotations[RuntimeLabels.ContainerHash] = PodHashes.Of(container);
        config.Annotations[RuntimeLabels.ContainerRestartCount] = restartCount.ToString(CultureInfo.InvariantCulture);
        config.Annotations[RuntimeLabels.ContainerTerminationMessagePath] = container.TerminationMessagePath ?? string.Empty;
        config.Annotations[RuntimeLabels.ContainerType] = isInit ? "init" : "app";
        config.Annotations[RuntimeLabels.ContainerImage] = container.Image;
        config.Annotations[RuntimeLabels.PodTerminationGracePeriod] = (spec.TerminationGracePeriodSeconds ?? PodValidation.DefaultTerminationGracePeriodSeconds).ToString(CultureInfo.InvariantCulture);
        return config;
    }

    /// <summary>kubelet's mapping of requests and limits to cgroup values (shares, CFS quota, memory limit, OOM score).</summary>
    public LinuxContainerResources BuildResources(V1PodSpec spec, V1Container container)
    {
        var limits = container.Resources?.Limits;
        var requests = container.Resources?.Requests;
        var cpuLimit = MilliCpu(limits, "cpu");
        var cpuRequest = MilliCpu(requests, "cpu") ?? cpuLimit;
        var memoryLimit = Bytes(limits, "memory");
        var memoryRequest = Bytes(requests, "memory") ?? memoryLimit;

        var resources = new LinuxContainerResources
        {
            CpuShares = cpuRequest is { } req ? Math.Max(MinShares, req * 1024 / 1000) : MinShares,
        };

        if (cpuLimit is { } lim)
        {
            resources.CpuPeriod = CpuPeriod;
            resources.CpuQuota = Math.Max(MinQuota, lim * CpuPeriod / 1000);
        }

        if (memoryLimit is { } mem)
        {
            resources.MemoryLimitInBytes = mem;
        }

        resources.OomScoreAdj = OomScoreAdjust(spec, memoryRequest);
        return resources;
    }

    /// <summary>kubelet's QoS OOM score: Guaranteed -997, BestEffort 1000, Burstable by memory request.</summary>
    private long OomScoreAdjust(V1PodSpec spec, long? memoryRequest)
    {
        switch (QosClass(spec))
        {
            case "Guaranteed":
                return -997;
            case "BestEffort":
                return 1000;
        }

        if (memoryRequest is not { } request || layout.MemoryCapacityBytes <= 0)
        {
            return 999;
        }

        var score = 1000 - (1000 * request / layout.MemoryCapacityBytes);
        return Math.Clamp(score, 3, 999);
    }

    /// <summary>The pod's QoS class, as Kubernetes computes it.</summary>
    public static string QosClass(V1PodSpec spec)
    {
        var containers = PodValidation.AllContainers(spec).ToList();
        var any = containers.Any(c => (c.Resources?.Requests?.Count ?? 0) > 0 || (c.Resources?.Limits?.Count ?? 0) > 0);
        if (!any)
        {
            return "BestEffort";
        }

        var guaranteed = containers.All(c =>
        {
            var limits = c.Resources?.Limits;
            var requests = c.Resources?.Requests;
            foreach (var name in new[] { "cpu", "memory" })
            {
                if (limits is null || !limits.TryGetValue(name, out var limit))
                {
                    return false;
                }

                if (requests is not null && requests.TryGetValue(name, out var request) && request.ToDecimal() != limit.ToDecimal())
                {
                    return false;
                }
            }

            return true;
        });
        return guaranteed ? "Guaranteed" : "Burstable";
    }

    private static LinuxContainerSecurityContext BuildSecurityContext(V1PodSpec spec, V1Container container)
    {
        var sc = container.SecurityContext;
        var podSc = spec.SecurityContext;
        var result = new LinuxContainerSecurityContext
        {
            Privileged = sc?.Privileged ?? false,
            ReadonlyRootfs = sc?.ReadOnlyRootFilesystem ?? false,
            NamespaceOptions = NamespaceOptions(spec),
            NoNewPrivs = sc?.AllowPrivilegeEscalation == false,
        };

        if ((sc?.RunAsUser ?? podSc?.RunAsUser) is { } uid)
        {
            result.RunAsUser = new Int64Value { Value = uid };
        }

        if ((sc?.RunAsGroup ?? podSc?.RunAsGroup) is { } gid)
        {
            result.RunAsGroup = new Int64Value { Value = gid };
        }

        if (podSc?.SupplementalGroups is { } groups)
        {
            result.SupplementalGroups.AddRange(groups.Where(g => g.HasValue).Select(g => g!.Value));
        }

        if (sc?.Capabilities is { } caps)
        {
            result.Capabilities = new Capability();
            result.Capabilities.AddCapabilities.AddRange((caps.Add ?? []).Select(c => c.StartsWith("CAP_", StringComparison.Ordinal) ? c : "CAP_" + c));
            result.Capabilities.DropCapabilities.AddRange((caps.Drop ?? []).Select(c => c.StartsWith("CAP_", StringComparison.Ordinal) ? c : "CAP_" + c));
        }

        return result;
    }

    private static NamespaceOption NamespaceOptions(V1PodSpec spec) => new()
    {
        Network = spec.HostNetwork ?? false ? NamespaceMode.Node : NamespaceMode.Pod,
        Pid = spec.HostPID ?? false ? NamespaceMode.Node : spec.ShareProcessNamespace ?? false ? NamespaceMode.Pod : NamespaceMode.Container,
        Ipc = spec.HostIPC ?? false ? NamespaceMode.Node : NamespaceMode.Pod,
    };

    /// <summary>The container's environment in order: explicit values and downward-API fields.</summary>
    public List<(string Name, string Value)> BuildEnvironment(V1Pod pod, V1Container container, string? podIp)
    {
        var result = new List<(string, string)>();
        var lookup = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var env in container.Env ?? [])
        {
            string value;
            if (env.ValueFrom?.FieldRef is { } fieldRef)
            {
                value = FieldValue(pod, fieldRef.FieldPath, podIp);
            }
            else if (env.ValueFrom?.ResourceFieldRef is { } resourceRef)
            {
                value = ResourceFieldValue(pod, container, resourceRef);
            }
            else
            {
                value = Expand(env.Value ?? string.Empty, lookup);
            }

            lookup[env.Name] = value;
            result.Add((env.Name, value));
        }

        return result;
    }

    private string FieldValue(V1Pod pod, string path, string? podIp)
    {
        static string Quoted(string path, string prefix) => path[prefix.Length..^2];
        return path switch
        {
            "metadata.name" => pod.Name(),
            "metadata.namespace" => pod.Namespace(),
            "metadata.uid" => pod.Uid(),
            "spec.nodeName" => pod.Spec.NodeName ?? layout.NodeName,
            "spec.serviceAccountName" => pod.Spec.ServiceAccountName ?? string.Empty,
            "status.podIP" or "status.podIPs" => podIp ?? string.Empty,
            "status.hostIP" or "status.hostIPs" => pod.Status?.HostIP ?? string.Empty,
            _ when path.StartsWith("metadata.labels['", StringComparison.Ordinal) =>
                pod.Metadata.Labels?.TryGetValue(Quoted(path, "metadata.labels['"), out var l) == true ? l : string.Empty,
            _ when path.StartsWith("metadata.annotations['", StringComparison.Ordinal) =>
                pod.Metadata.Annotations?.TryGetValue(Quoted(path, "metadata.annotations['"), out var a) == true ? a : string.Empty,
            _ => throw new ContainerConfigException($"unsupported fieldRef {path}"),
        };
    }

    /// <summary>The device nodes of the extended resources the container asks for (device-plugin style).</summary>
    private IEnumerable<Device> BuildDevices(V1Container container)
    {
        var asked = (container.Resources?.Limits?.Keys ?? []).Concat(container.Resources?.Requests?.Keys ?? []).Distinct(StringComparer.Ordinal);
        foreach (var resource in asked.Where(r => r.StartsWith("edgekube.io/", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            if (!layout.Devices.TryGetValue(resource, out var paths))
            {
                throw new ContainerConfigException($"extended resource {resource} is not available on node {layout.NodeName}");
            }

            foreach (var path in paths)
            {
                var (host, inContainer) = Board.DeviceResources.Split(path);
                yield return new Device { HostPath = host, ContainerPath = inContainer, Permissions = "rwm" };
            }
        }
    }

    private string ResourceFieldValue(V1Pod pod, V1Container self, V1ResourceFieldSelector selector)
    {
        var container = string.IsNullOrEmpty(selector.ContainerName)
            ? self
            : PodValidation.AllContainers(pod.Spec).FirstOrDefault(c => c.Name == selector.ContainerName)
              ?? throw new ContainerConfigException($"resourceFieldRef: no container named {selector.ContainerName}");
        var divisor = selector.Divisor?.ToDecimal() is { } d && d > 0 ? d : 1m;
        decimal? value = selector.Resource switch
        {
            "limits.cpu" => container.Resources?.Limits?.TryGetValue("cpu", out var q) == true ? q.ToDecimal() : Environment.ProcessorCount,
            "requests.cpu" => container.Resources?.Requests?.TryGetValue("cpu", out var q) == true ? q.ToDecimal() : 0,
            "limits.memory" => container.Resources?.Limits?.TryGetValue("memory", out var q) == true ? q.ToDecimal() : layout.MemoryCapacityBytes,
            "requests.memory" => container.Resources?.Requests?.TryGetValue("memory", out var q) == true ? q.ToDecimal() : 0,
            _ => null,
        };
        if (value is null)
        {
            throw new ContainerConfigException($"resourceFieldRef: unsupported resource {selector.Resource}");
        }

        return decimal.Ceiling(value.Value / divisor).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, unknown references stay.</summary>
    public static string Expand(string input, IReadOnlyDictionary<string, string> vars)
    {
        if (!input.Contains('$'))
        {
            return input;
        }

        var sb = new StringBuilder(input.Length);
        for (var i = 0; i < input.Length; i++)
        {
            if (input[i] != '$' || i + 1 >= input.Length)
            {
                sb.Append(input[i]);
                continue;
            }

            var next = input[i + 1];
            if (next == '$')
            {
                sb.Append('$');
                i++;
            }
            else if (next == '(')
            {
                var close = input.IndexOf(')', i + 2);
                if (close < 0)
                {
                    sb.Append(input, i, input.Length - i);
                    break;
                }

                var name = input[(i + 2)..close];
                if (vars.TryGetValue(name, out var value))
                {
                    sb.Append(value);
                }
                else
                {
                    sb.Append(input, i, close - i + 1);
                }

                i = close;
            }
            else
            {
                sb.Append('$');
            }
        }

        return sb.ToString();
    }

    private IEnumerable<Mount> BuildMounts(V1Pod pod, V1Container container)
    {
        var volumes = (pod.Spec.Volumes ?? []).ToDictionary(v => v.Name, StringComparer.Ordinal);
        foreach (var vm in container.VolumeMounts ?? [])
        {
            var volume = volumes[vm.Name];
            var hostPath = VolumeHostPath(pod, volume);
            if (!string.IsNullOrEmpty(vm.SubPath))
            {
                if (Path.IsPathRooted(vm.SubPath) || vm.SubPath.Split('/').Contains(".."))
                {
                    throw new ContainerConfigException($"volumeMounts {vm.Name}: subPath {vm.SubPath} must be a relative path without '..'");
                }

                hostPath = Path.Combine(hostPath, vm.SubPath);
                if (!File.Exists(hostPath))
                {
                    Directory.CreateDirectory(hostPath);
                }
            }

            yield return new Mount
            {
                ContainerPath = vm.MountPath,
                HostPath = hostPath,
                Readonly = vm.ReadOnlyProperty ?? false,
                Propagation = vm.MountPropagation switch
                {
                    "HostToContainer" => MountPropagation.PropagationHostToContainer,
                    "Bidirectional" => MountPropagation.PropagationBidirectional,
                    _ => MountPropagation.PropagationPrivate,
                },
            };
        }
    }

    /// <summary>The host directory behind a volume, created as the volume type says.</summary>
    public string VolumeHostPath(V1Pod pod, V1Volume volume)
    {
        if (volume.EmptyDir is not null)
        {
            var dir = Path.Combine(layout.PodDirectory(pod.Uid()), "volumes", "kubernetes.io~empty-dir", volume.Name);
            Directory.CreateDirectory(dir);
            return dir;
        }

        var hp = volume.HostPath ?? throw new ContainerConfigException($"volume {volume.Name}: unsupported volume type");
        var path = hp.Path;
        switch (hp.Type)
        {
            case "DirectoryOrCreate":
                Directory.CreateDirectory(path);
                break;
            case "FileOrCreate":
                if (!File.Exists(path))
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    File.WriteAllBytes(path, []);
                }

                break;
            case "Directory" when !Directory.Exists(path):
                throw new ContainerConfigException($"hostPath type check failed: {path} is not a directory");
            case "File" when !File.Exists(path):
                throw new ContainerConfigException($"hostPath type check failed: {path} is not a file");
            case "Socket" or "CharDevice" or "BlockDevice" when !File.Exists(path):
                throw new ContainerConfigException($"hostPath type check failed: {path} does not exist");
        }

        return path;
    }

    private static long? MilliCpu(IDictionary<string, ResourceQuantity>? list, string name) =>
        list is not null && list.TryGetValue(name, out var q) ? (long)decimal.Ceiling(q.ToDecimal() * 1000) : null;

    private static long? Bytes(IDictionary<string, ResourceQuantity>? list, string name) =>
        list is not null && list.TryGetValue(name, out var q) ? (long)decimal.Ceiling(q.ToDecimal()) : null;

    private static string TruncateHostname(string name) => name.Length > 63 ? name[..63].TrimEnd('-', '.') : name;
}
