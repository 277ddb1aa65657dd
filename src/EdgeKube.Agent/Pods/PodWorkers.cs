using EdgeKube.Agent.Store;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// Dispatches desired-pod changes and runtime events to one <see cref="PodWorker"/> per pod uid, and
/// terminates pods the runtime holds that nobody wants (once every source has reported).
/// </summary>
public sealed partial class PodWorkers(PodWorkerContext context, ILogger<PodWorkers> logger)
{
    private readonly object _lock = new();
    private readonly Dictionary<string, (PodWorker Worker, Task Task)> _workers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, V1Pod> _desired = new(StringComparer.Ordinal);
    private CancellationToken _stopping;
    private volatile bool _orphanCleanup;

    public PodWorkerContext Context => context;

    /// <summary>Starts dispatching; workers stop when <paramref name="stopping"/> fires.</summary>
    public void Start(CancellationToken stopping) => _stopping = stopping;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _workers.Count;
            }
        }
    }

    /// <summary>Allows removing runtime pods that no source wants: call once every source has sent its first set.</summary>
    public void EnableOrphanCleanup() => _orphanCleanup = true;

    public void UpdatePod(DesiredPod desired)
    {
        var uid = desired.Uid;
        if (desired.Pod.Metadata?.DeletionTimestamp is not null)
        {
            // As kubelet: a pod the API server is deleting is terminated with its deletion grace period.
            RemovePod(desired);
            return;
        }

        lock (_lock)
        {
            _desired[uid] = desired.Pod;
            if (_workers.TryGetValue(uid, out var existing) && existing.Worker.State == PodWorkerState.Syncing)
            {
                existing.Worker.Update(desired.Pod);
                return;
            }

            if (existing.Worker is not null)
            {
                // The uid is still terminating: it starts again once that has finished.
                return;
            }

            StartWorker(uid, desired.Pod);
        }
    }

    public void RemovePod(DesiredPod removed)
    {
        var uid = removed.Uid;
        lock (_lock)
        {
            _desired.Remove(uid);
            if (_workers.TryGetValue(uid, out var existing))
            {
                var grace = removed.Pod.Metadata?.DeletionGracePeriodSeconds is { } s ? TimeSpan.FromSeconds(s) : (TimeSpan?)null;
                existing.Worker.Terminate(grace);
            }
            else
            {
                // Never ran here (or already gone): nothing to stop, but the status must still say it is gone.
                context.Statuses.Remove(uid);
            }
        }
    }

    /// <summary>A runtime event for <paramref name="uid"/>: wake its worker.</summary>
    public void Wake(string uid)
    {
        lock (_lock)
        {
            if (_workers.TryGetValue(uid, out var existing))
            {
                existing.Worker.Wake();
            }
        }
    }

    /// <summary>After a relist: pods in the runtime with no worker and no desire are orphans to terminate.</summary>
    public void OnRelisted(IReadOnlyCollection<string> runtimeUids)
    {
        if (!_orphanCleanup)
        {
            return;
        }

        lock (_lock)
        {
            foreach (var uid in runtimeUids)
            {
                if (!_desired.ContainsKey(uid) && !_workers.ContainsKey(uid))
                {
                    LogOrphan(uid);
                    StartWorker(uid, null);
                }
            }
        }
    }

    public PodWorkerState? StateOf(string uid)
    {
        lock (_lock)
        {
            return _workers.TryGetValue(uid, out var w) ? w.Worker.State : null;
        }
    }

    /// <summary>Waits for all workers to end (after the stopping token fired).</summary>
    public Task WhenAllStopped()
    {
        lock (_lock)
        {
            return Task.WhenAll(_workers.Values.Select(w => w.Task));
        }
    }

    private void StartWorker(string uid, V1Pod? pod)
    {
        var worker = new PodWorker(uid, pod, context);
        var task = Task.Run(async () =>
        {
            try
            {
                await worker.RunAsync(_stopping).ConfigureAwait(false);
            }
            finally
            {
                lock (_lock)
                {
                    if (_workers.TryGetValue(uid, out var current) && current.Worker == worker)
                    {
                        _workers.Remove(uid);
                        if (!_stopping.IsCancellationRequested && _desired.TryGetValue(uid, out var again))
                        {
                            StartWorker(uid, again);
                        }
                    }
                }
            }
        });
        _workers[uid] = (worker, task);
    }

    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Pod {Uid} is in the runtime but not desired: terminating it")]
    private partial void LogOrphan(string uid);
}
