using EdgeKube.Agent.Json;
using System.Text;
using EdgeKube.Agent.Store;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Pods.Sources;

/// <summary>
/// kubelet's static pods (<c>--pod-manifest-path</c>): every <c>.yaml</c>, <c>.yml</c> or <c>.json</c>
/// file in the directory is a pod. The directory is checked every period; an added, changed or removed
/// file is followed. As in kubelet, the pod is named <c>{name}-{nodeName}</c>, bound to this node, and
/// its uid is a hash of its content, so a changed manifest is a new pod that replaces the old one.
/// </summary>
public sealed partial class StaticPodSource(string directory, string nodeName, DesiredPodStore store, TimeProvider time, ILogger<StaticPodSource> logger)
{
    public const string SourceName = "file";

    private readonly Dictionary<string, (DateTime Modified, long Length, string Text)> _seen = new(StringComparer.Ordinal);
    private string _lastFingerprint = "\0";

    public TimeSpan Period { get; init; } = TimeSpan.FromSeconds(1);

    public string Directory => directory;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Period, time);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            Scan();
        }
    }

    /// <summary>One scan of the directory; hands the store the full set when anything changed.</summary>
    public void Scan()
    {
        var files = new List<string>();
        if (System.IO.Directory.Exists(directory))
        {
            files.AddRange(System.IO.Directory.EnumerateFiles(directory)
                .Where(f => !Path.GetFileName(f).StartsWith('.'))
                .Where(f => Path.GetExtension(f) is ".yaml" or ".yml" or ".json")
                .Order(StringComparer.Ordinal));
        }

        var changed = false;
        foreach (var file in files)
        {
            try
            {
                var info = new FileInfo(file);
                if (_seen.TryGetValue(file, out var seen) && seen.Modified == info.LastWriteTimeUtc && seen.Length == info.Length)
                {
                    continue;
                }

                _seen[file] = (info.LastWriteTimeUtc, info.Length, File.ReadAllText(file));
                changed = true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogUnreadable(file, e.Message);
            }
        }

        foreach (var gone in _seen.Keys.Where(k => !files.Contains(k)).ToList())
        {
            _seen.Remove(gone);
            changed = true;
        }

        var fingerprint = string.Join('\n', _seen.Select(kv => kv.Key + "=" + kv.Value.Modified.Ticks + "/" + kv.Value.Length));
        if (!changed && fingerprint == _lastFingerprint)
        {
            return;
        }

        _lastFingerprint = fingerprint;
        var pods = new List<V1Pod>();
        var rejected = new List<RejectedPod>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (file, entry) in _seen.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            IReadOnlyList<V1Pod> parsed;
            try
            {
                parsed = PodManifest.Parse(entry.Text);
            }
            catch (InvalidPodException e)
            {
                Reject(file, null, e.Message);
                continue;
            }

            foreach (var pod in parsed)
            {
                PodValidation.ApplyDefaults(pod);
                var errors = PodValidation.Validate(pod);
                if (errors.Count > 0)
                {
                    Reject(file, pod, string.Join("; ", errors));
                    continue;
                }

                MakeStatic(pod, file);
                if (!names.Add(pod.Namespace() + "/" + pod.Name()))
                {
                    Reject(file, pod, $"duplicate pod {pod.Namespace()}/{pod.Name()}: another manifest already defines it");
                    continue;
                }

                pods.Add(pod);
            }
        }

        store.SetSource(SourceName, pods, rejected);

        void Reject(string file, V1Pod? pod, string reason)
        {
            LogRejected(file, reason);
            var name = pod?.Metadata?.Name is { Length: > 0 } n ? n + "-" + nodeName : Path.GetFileNameWithoutExtension(file);
            rejected.Add(new RejectedPod(SourceName, file, pod?.Metadata?.NamespaceProperty ?? PodValidation.DefaultNamespace, name, reason));
        }
    }

    /// <summary>
    /// kubelet's static pod identity: uid from a hash of the pod, the node and the file (128 bits, 32 hex digits, as
    /// kubelet's MD5); name suffixed with the node. XXH128 in managed code: MD5 would go through libssl, which a
    /// board without TLS need not have.
    /// </summary>
    private void MakeStatic(V1Pod pod, string file)
    {
        var json = KubeJson.Serialize(pod);
        var hash = Convert.ToHexStringLower(System.IO.Hashing.XxHash128.Hash(Encoding.UTF8.GetBytes($"{json}\nhost:{nodeName}\nfile:{file}")));
        pod.Metadata.Uid = hash;
        pod.Metadata.Name = pod.Metadata.Name + "-" + nodeName;
        pod.Spec.NodeName = nodeName;
        pod.Metadata.Annotations ??= new Dictionary<string, string>();
        pod.Metadata.Annotations["kubernetes.io/config.source"] = SourceName;
        pod.Metadata.Annotations["kubernetes.io/config.hash"] = hash;
        pod.Spec.Tolerations ??= [];
        pod.Spec.Tolerations.Add(new V1Toleration { OperatorProperty = "Exists", Effect = "NoExecute" });
    }

    [LoggerMessage(EventId = 800, Level = LogLevel.Error, Message = "Static pod manifest {File} rejected: {Reason}")]
    private partial void LogRejected(string file, string reason);

    [LoggerMessage(EventId = 801, Level = LogLevel.Warning, Message = "Static pod manifest {File} unreadable: {Error}")]
    private partial void LogUnreadable(string file, string error);
}
