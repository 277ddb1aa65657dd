using System.Net;

namespace EdgeKube.Agent.Hosting;

/// <summary>The agent's settings, named and defaulted after kubelet's flags where kubelet has one.</summary>
public sealed record AgentOptions
{
    public const string DefaultContainerdSocket = "/run/containerd/containerd.sock";

    /// <summary><c>--node-name</c>: this node's name (default: the hostname, lower-cased).</summary>
    public string NodeName { get; init; } = Environment.MachineName.ToLowerInvariant();

    /// <summary><c>--pod-manifest-path</c>: directory of static pod manifests; none when empty.</summary>
    public string? PodManifestPath { get; init; }

    /// <summary><c>--containerd-socket</c>: the CRI endpoint.</summary>
    public string ContainerdSocket { get; init; } = DefaultContainerdSocket;

    /// <summary><c>--state-dir</c>: desired pods, statuses and pod volumes.</summary>
    public string StateDir { get; init; } = "/var/lib/edgekube";

    /// <summary><c>--pod-logs-dir</c>: container logs, as kubelet's /var/log/pods.</summary>
    public string PodLogsDir { get; init; } = "/var/log/pods";

    /// <summary><c>--address</c>: where the read-only endpoint listens (loopback unless configured).</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary><c>--read-only-port</c>: /healthz, /pods, /metrics; 0 disables.</summary>
    public int ReadOnlyPort { get; init; } = 10255;

    /// <summary><c>--node-ip</c>: the address reported as hostIP; detected when empty.</summary>
    public string? NodeIp { get; init; }

    /// <summary><c>--runtime-request-timeout</c>: deadline of every CRI call except image pulls.</summary>
    public TimeSpan RuntimeRequestTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary><c>--image-pull-timeout</c>: deadline of one image pull.</summary>
    public TimeSpan ImagePullTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary><c>--file-check-frequency</c>: how often the static pod directory is checked.</summary>
    public TimeSpan FileCheckFrequency { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary><c>--cni-conf-dir</c>: where the agent writes the CNI config for its pod CIDR (containerd's CRI <c>conf_dir</c>); empty leaves the pod network to someone else.</summary>
    public string CniConfDir { get; init; } = "/etc/cni/net.d";

    /// <summary>
    /// <c>--node-status-update-frequency</c>: how often the node computes its status, which is published
    /// when it changed. kubelet's default is 10 s; checking every second costs nothing on the link.
    /// </summary>
    public TimeSpan NodeStatusUpdateFrequency { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// <c>--node-lease-duration-seconds</c> (kubelet's nodeLeaseDurationSeconds, 40 s there): how long the
    /// master holds the lease while the node's MQTT session is open; renewed every quarter of it. The
    /// session is the proof of life (will, broker keepalive, the link taken down when the agent hangs),
    /// so the lease is a backstop and can be long: 600 s, a lease every 150 s.
    /// </summary>
    public TimeSpan NodeLeaseDuration { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>From <c>--config</c>: the broker the master's pods come from; none runs only static pods.</summary>
    public Mqtt.BrokerOptions? Broker { get; init; }

    /// <summary><c>--max-pods</c>: the pods capacity.</summary>
    public int MaxPods { get; init; } = 110;

    /// <summary><c>--system-reserved</c>: resources kept for the OS (cpu=…,memory=…,ephemeral-storage=…).</summary>
    public string? SystemReserved { get; init; }

    /// <summary><c>--kube-reserved</c>: resources kept for the agent and containerd.</summary>
    public string? KubeReserved { get; init; }

    /// <summary><c>--eviction-hard</c>: the thresholds the pressure conditions compare with.</summary>
    public string EvictionHard { get; init; } = Node.EvictionThresholds.DefaultText;

    /// <summary><c>--eviction-pressure-transition-period</c>: how long a pressure condition stays after its signal clears.</summary>
    public TimeSpan EvictionPressureTransitionPeriod { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary><c>--procfs-root</c>: where /proc is (tests and containers point it elsewhere).</summary>
    public string ProcfsRoot { get; init; } = "/proc";

    /// <summary><c>--sysfs-root</c>: where /sys is: thermal zones, firmware flags, 1-wire, LED class.</summary>
    public string SysfsRoot { get; init; } = "/sys";

    /// <summary>From <c>--config</c>: sensors, LEDs, thermal thresholds, device resources.</summary>
    public Board.BoardConfig Board { get; init; } = new();

    /// <summary>Every problem with the settings, each naming the setting; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Pods.PodValidation.IsDns1123Subdomain(NodeName))
        {
            errors.Add($"--node-name: \"{NodeName}\" is not a valid node name (lower-case RFC 1123 subdomain)");
        }

        if (ReadOnlyPort is < 0 or > 65535)
        {
            errors.Add($"--read-only-port: {ReadOnlyPort} is not a port (0-65535, 0 disables)");
        }

        if (!IPAddress.TryParse(Address, out _))
        {
            errors.Add($"--address: \"{Address}\" is not an IP address");
        }

        if (NodeIp is { Length: > 0 } ip && !IPAddress.TryParse(ip, out _))
        {
            errors.Add($"--node-ip: \"{ip}\" is not an IP address");
        }

        if (string.IsNullOrWhiteSpace(ContainerdSocket))
        {
            errors.Add("--containerd-socket: must name the containerd socket");
        }

        if (string.IsNullOrWhiteSpace(StateDir) || !Path.IsPathRooted(StateDir))
        {
            errors.Add($"--state-dir: \"{StateDir}\" must be an absolute path");
        }

        if (string.IsNullOrWhiteSpace(PodLogsDir) || !Path.IsPathRooted(PodLogsDir))
        {
            errors.Add($"--pod-logs-dir: \"{PodLogsDir}\" must be an absolute path");
        }

        if (PodManifestPath is { Length: > 0 } manifests && !Path.IsPathRooted(manifests) && !Directory.Exists(manifests))
        {
            errors.Add($"--pod-manifest-path: \"{manifests}\" does not exist");
        }

        if (CniConfDir is { Length: > 0 } cni && !Path.IsPathRooted(cni))
        {
            errors.Add($"--cni-conf-dir: \"{cni}\" must be an absolute path (or empty to leave the pod network alone)");
        }

        if (RuntimeRequestTimeout <= TimeSpan.Zero)
        {
            errors.Add("--runtime-request-timeout: must be positive");
        }

        if (NodeStatusUpdateFrequency <= TimeSpan.Zero)
        {
            errors.Add("--node-status-update-frequency: must be positive");
        }

        if (NodeLeaseDuration < TimeSpan.FromSeconds(1) || NodeLeaseDuration > TimeSpan.FromDays(1))
        {
            errors.Add($"--node-lease-duration-seconds: {NodeLeaseDuration.TotalSeconds:0} is out of range (1-86400)");
        }

        if (FileCheckFrequency <= TimeSpan.Zero)
        {
            errors.Add("--file-check-frequency: must be positive");
        }

        if (MaxPods is < 1 or > 10000)
        {
            errors.Add($"--max-pods: {MaxPods} must be between 1 and 10000");
        }

        foreach (var (flag, text) in new[] { ("--system-reserved", SystemReserved), ("--kube-reserved", KubeReserved) })
        {
            try
            {
                Node.ResourceReservation.Parse(flag, text);
            }
            catch (FormatException e)
            {
                errors.Add(e.Message);
            }
        }

        try
        {
            Node.EvictionThresholds.Parse("--eviction-hard", EvictionHard);
        }
        catch (FormatException e)
        {
            errors.Add(e.Message);
        }

        if (EvictionPressureTransitionPeriod < TimeSpan.Zero)
        {
            errors.Add("--eviction-pressure-transition-period: must not be negative");
        }

        foreach (var (flag, root) in new[] { ("--procfs-root", ProcfsRoot), ("--sysfs-root", SysfsRoot) })
        {
            if (string.IsNullOrWhiteSpace(root) || !Path.IsPathRooted(root))
            {
                errors.Add($"{flag}: \"{root}\" must be an absolute path");
            }
        }

        errors.AddRange(Board.Validate());
        return errors;
    }
}
