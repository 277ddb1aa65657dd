using EdgeKube.Agent.Json;
using System.Text.Json;
using EdgeKube.Agent.Pods;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Store;

/// <summary>A desired pod and the source that asked for it.</summary>
public sealed record DesiredPod(V1Pod Pod, string Source)
{
    public string Uid => Pod.Uid();

    public string Key => $"{Pod.Namespace()}/{Pod.Name()}";
}

/// <summary>A manifest a source could not accept; shown in /pods and the log, never run.</summary>
public sealed record RejectedPod(string Source, string Origin, string Namespace, string Name, string Reason);

/// <summary>
/// The one owner of the desired pods. Sources hand it their complete set (kubelet's SET semantics);
/// it persists each pod under <c>{state-dir}/desired</c> before it tells anyone, so a pod acknowledged
/// to its source survives a crash or a reboot without network.
/// </summary>
public sealed partial class DesiredPodStore
{
    private readonly object _lock = new();
    private readonly Dictionary<string, DesiredPod> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<RejectedPod>> _rejected = new(StringComparer.Ordinal);
    private readonly string _dir;
    private readonly ILogger<DesiredPodStore> _logger;

    public DesiredPodStore(string stateDir, ILogger<DesiredPodStore> logger)
    {
        _dir = Path.Combine(stateDir, "desired");
        _logger = logger;
        Directory.CreateDirectory(_dir);
        AtomicFile.CleanTemporaries(_dir);
    }

    /// <summary>Raised after a pod was added or changed (already persisted).</summary>
    public event Action<DesiredPod>? PodUpdated;

    /// <summary>Raised with the uid of a pod that is no longer desired.</summary>
    public event Action<DesiredPod>? PodRemoved;

    /// <summary>Loads what was persisted; a torn or garbage file is logged and skipped.</summary>
    public void Load()
    {
        foreach (var file in Directory.EnumerateFiles(_dir, "*.json"))
        {
            try
            {
                var record = JsonSerializer.Deserialize(File.ReadAllText(file), StoreJsonContext.Default.PersistedPod)
                    ?? throw new JsonException("empty");
                var pod = PodManifest.ParseJson(record.Pod);
                lock (_lock)
                {
                    _pods[pod.Uid()] = new DesiredPod(pod, record.Source);
                }
            }
            catch (Exception e) when (e is JsonException or InvalidPodException or IOException or NotSupportedException)
            {
                LogCorruptFile(file, e.Message);
                TryQuarantine(file);
            }
        }
    }

    public IReadOnlyList<DesiredPod> All()
    {
        lock (_lock)
        {
            return [.. _pods.Values];
        }
    }

    public DesiredPod? Get(string uid)
    {
        lock (_lock)
        {
            return _pods.TryGetValue(uid, out var p) ? p : null;
        }
    }

    public IReadOnlyList<RejectedPod> Rejected()
    {
        lock (_lock)
        {
            return [.. _rejected.Values.SelectMany(r => r)];
        }
    }

    /// <summary>Replaces everything <paramref name="source"/> wants with <paramref name="pods"/>.</summary>
    public void SetSource(string source, IReadOnlyList<V1Pod> pods, IReadOnlyList<RejectedPod> rejected)
    {
        var updated = new List<DesiredPod>();
        var removed = new List<DesiredPod>();
        lock (_lock)
        {
            _rejected[source] = rejected;
            var wanted = pods.ToDictionary(p => p.Uid(), StringComparer.Ordinal);
            foreach (var existing in _pods.Values.Where(p => p.Source == source && !wanted.ContainsKey(p.Uid)).ToList())
            {
                _pods.Remove(existing.Uid);
                AtomicFile.Delete(PathFor(existing.Uid));
                removed.Add(existing);
            }

            foreach (var pod in pods)
            {
                // A source hands back the very object it gave before for a pod that did not change (the MQTT
                // source keeps them between messages): no need to serialize both to see that. Each message
                // for one pod would otherwise serialize every pod of the node twice.
                var known = _pods.TryGetValue(pod.Uid(), out var old);
                if (known && ReferenceEquals(old!.Pod, pod))
                {
                    continue;
                }

                var json = KubeJson.Serialize(pod);
                if (known && KubeJson.Serialize(old!.Pod) == json)
                {
                    continue;
                }

                var desired = new DesiredPod(pod, source);
                AtomicFile.WriteAllText(PathFor(pod.Uid()), JsonSerializer.Serialize(new PersistedPod(source, json), StoreJsonContext.Default.PersistedPod));
                _pods[pod.Uid()] = desired;
                updated.Add(desired);
            }
        }

        foreach (var r in removed)
        {
            PodRemoved?.Invoke(r);
        }

        foreach (var u in updated)
        {
            PodUpdated?.Invoke(u);
        }
    }

    private string PathFor(string uid) => Path.Combine(_dir, uid + ".json");

    private void TryQuarantine(string file)
    {
        try
        {
            File.Move(file, file + ".corrupt", overwrite: true);
        }
        catch (IOException)
        {
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Skipping unreadable desired-pod file {File}: {Error}")]
    private partial void LogCorruptFile(string file, string error);
}

/// <summary>On-disk form of a desired pod: the source and the pod's JSON.</summary>
public sealed record PersistedPod(string Source, string Pod);

/// <summary>On-disk form of a pod status: the pod uid and the status's JSON.</summary>
public sealed record PersistedStatus(string Uid, string Status);
