using EdgeKube.Agent.Cri;
using EdgeKube.Agent.Cri.V1;
using EdgeKube.Agent.Pods;
using k8s.Models;

namespace EdgeKube.Agent.Tests.Fakes;

/// <summary>
/// In-memory CRI runtime for unit tests of pure logic, after cri-api's fake runtime service: records
/// every call, lets a test inject errors per call name, and lets containers "exit" on demand.
/// </summary>
public sealed class FakeRuntime(TimeProvider time) : IContainerRuntime
{
    private readonly object _lock = new();
    private readonly Dictionary<string, PodSandboxStatus> _sandboxes = new();
    private readonly Dictionary<string, (ContainerStatus Status, string SandboxId)> _containers = new();
    private readonly HashSet<string> _images = new(StringComparer.Ordinal);
    private int _next;

    // The last relist's answer, kept until a call changes something: hollow nodes relist every second, as
    // kubelet does, and 10,000 of them in one bench process must not rebuild unchanged listings.
    private RuntimeListing? _listing;
    private IReadOnlyDictionary<string, string>? _listingSelector;

    private static readonly HashSet<string> ReadOnlyCalls = new(StringComparer.Ordinal)
    {
        "Version", "Status", "PodSandboxStatus", "ListPodSandbox", "ListContainers", "ListPodStates", "ContainerStatus",
        "ExecSync", "ListContainerStats", "ImageStatus", "ListImages",
    };

    public List<string> Calls { get; } = [];

    /// <summary>Whether calls are recorded in <see cref="Calls"/>; the benchmarks' hollow nodes run for long and turn it off.</summary>
    public bool RecordCalls { get; init; } = true;

    /// <summary>Errors to throw, by call name (e.g. "PullImage"), consumed one per call.</summary>
    public Dictionary<string, Queue<RuntimeException>> Errors { get; } = new();

    /// <summary>Images that a pull fails for.</summary>
    public HashSet<string> UnpullableImages { get; } = new(StringComparer.Ordinal);

    public void AddImage(string image)
    {
        lock (_lock)
        {
            _images.Add(image);
        }
    }

    /// <summary>Runs <paramref name="pod"/>'s sandbox and its first container as the agent would configure them, with no pod worker.</summary>
    public async Task<(string Sandbox, string Container)> RunPodAsync(V1Pod pod, RuntimeConfigBuilder configs)
    {
        var sandboxConfig = configs.BuildSandboxConfig(pod, 0);
        var sandbox = await RunPodSandboxAsync(sandboxConfig, CancellationToken.None);
        var container = await CreateContainerAsync(sandbox, configs.BuildContainerConfig(pod, pod.Spec.Containers[0], "busybox:1.0", 0, null, false), sandboxConfig, CancellationToken.None);
        await StartContainerAsync(container, CancellationToken.None);
        return (sandbox, container);
    }

    public void InjectError(string call, RuntimeException error)
    {
        lock (_lock)
        {
            if (!Errors.TryGetValue(call, out var q))
            {
                Errors[call] = q = new Queue<RuntimeException>();
            }

            q.Enqueue(error);
        }
    }

    /// <summary>Makes a running container exit with <paramref name="exitCode"/>.</summary>
    public void Exit(string containerId, int exitCode, string reason = "")
    {
        lock (_lock)
        {
            var c = _containers[containerId].Status;
            c.State = ContainerState.ContainerExited;
            c.ExitCode = exitCode;
            c.Reason = reason;
            c.FinishedAt = Nanos();
            _listing = null;
        }
    }

    public IReadOnlyList<ContainerStatus> ContainersNamed(string name)
    {
        lock (_lock)
        {
            return _containers.Values.Select(c => c.Status).Where(c => c.Metadata.Name == name).OrderBy(c => c.CreatedAt).ToList();
        }
    }

    public IReadOnlyList<PodSandboxStatus> AllSandboxes()
    {
        lock (_lock)
        {
            return _sandboxes.Values.ToList();
        }
    }

    public Task<VersionResponse> VersionAsync(CancellationToken cancellationToken) => Call("Version", () =>
        new VersionResponse { Version = "0.1.0", RuntimeName = "fake", RuntimeVersion = "1.0", RuntimeApiVersion = "v1" });

    public Task<RuntimeStatus> StatusAsync(CancellationToken cancellationToken) => Call("Status", () => new RuntimeStatus());

    public Task<string> RunPodSandboxAsync(PodSandboxConfig config, CancellationToken cancellationToken) => Call("RunPodSandbox", () =>
    {
        var id = "sb" + Interlocked.Increment(ref _next);
        var status = new PodSandboxStatus
        {
            Id = id,
            Metadata = config.Metadata.Clone(),
            State = PodSandboxState.SandboxReady,
            CreatedAt = Nanos(),
            Network = new PodSandboxNetworkStatus { Ip = "10.88.0." + _next },
            Linux = new LinuxPodSandboxStatus { Namespaces = new Namespace { Options = config.Linux?.SecurityContext?.NamespaceOptions?.Clone() ?? new NamespaceOption() } },
        };
        status.Labels.Add(config.Labels);
        status.Annotations.Add(config.Annotations);
        _sandboxes[id] = status;
        return id;
    });

    public Task StopPodSandboxAsync(string podSandboxId, CancellationToken cancellationToken) => Call("StopPodSandbox", () =>
    {
        if (_sandboxes.TryGetValue(podSandboxId, out var s))
        {
            s.State = PodSandboxState.SandboxNotready;
            foreach (var c in _containers.Values.Where(c => c.SandboxId == podSandboxId && c.Status.State != ContainerState.ContainerExited))
            {
                c.Status.State = ContainerState.ContainerExited;
                c.Status.ExitCode = 137;
                c.Status.FinishedAt = Nanos();
            }
        }

        return true;
    });

    public Task RemovePodSandboxAsync(string podSandboxId, CancellationToken cancellationToken) => Call("RemovePodSandbox", () =>
    {
        _sandboxes.Remove(podSandboxId);
        foreach (var id in _containers.Where(c => c.Value.SandboxId == podSandboxId).Select(c => c.Key).ToList())
        {
            _containers.Remove(id);
        }

        return true;
    });

    public Task<PodSandboxStatus?> PodSandboxStatusAsync(string podSandboxId, CancellationToken cancellationToken) =>
        Call("PodSandboxStatus", () => _sandboxes.TryGetValue(podSandboxId, out var s) ? s.Clone() : null);

    /// <summary>While set and not completed, ListPodSandbox and ListPodStates (the relist) wait for it and ignore their deadline: a hung runtime call, a hung main loop.</summary>
    public TaskCompletionSource? Hang { get; set; }

    private Task HungAsync() => Hang?.Task ?? Task.CompletedTask;

    public async Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken cancellationToken)
    {
        await HungAsync().ConfigureAwait(false);
        return await ListPodSandboxNowAsync(filter).ConfigureAwait(false);
    }

    private Task<IReadOnlyList<PodSandbox>> ListPodSandboxNowAsync(PodSandboxFilter? filter) => Call("ListPodSandbox", () =>
        (IReadOnlyList<PodSandbox>)_sandboxes.Values
            .Where(s => filter is null || filter.LabelSelector.All(kv => s.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
            .Select(s =>
            {
                var p = new PodSandbox { Id = s.Id, Metadata = s.Metadata.Clone(), State = s.State, CreatedAt = s.CreatedAt };
                p.Labels.Add(s.Labels);
                p.Annotations.Add(s.Annotations);
                return p;
            }).ToList());

    public Task<string> CreateContainerAsync(string podSandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken cancellationToken) => Call("CreateContainer", () =>
    {
        if (!_sandboxes.ContainsKey(podSandboxId))
        {
            throw new RuntimeException(RuntimeErrorKind.NotFound, "sandbox not found");
        }

        var id = "c" + Interlocked.Increment(ref _next);
        var status = new ContainerStatus
        {
            Id = id,
            Metadata = config.Metadata.Clone(),
            State = ContainerState.ContainerCreated,
            CreatedAt = Nanos(),
            Image = config.Image.Clone(),
            ImageRef = "sha256:" + config.Image.Image,
        };
        status.Labels.Add(config.Labels);
        status.Annotations.Add(config.Annotations);
        _containers[id] = (status, podSandboxId);
        return id;
    });

    public Task StartContainerAsync(string containerId, CancellationToken cancellationToken) => Call("StartContainer", () =>
    {
        var c = _containers[containerId].Status;
        c.State = ContainerState.ContainerRunning;
        c.StartedAt = Nanos();
        return true;
    });

    public Task StopContainerAsync(string containerId, TimeSpan gracePeriod, CancellationToken cancellationToken) => Call("StopContainer", () =>
    {
        if (_containers.TryGetValue(containerId, out var c) && c.Status.State != ContainerState.ContainerExited)
        {
            c.Status.State = ContainerState.ContainerExited;
            c.Status.ExitCode = 143;
            c.Status.FinishedAt = Nanos();
        }

        return true;
    });

    public Task RemoveContainerAsync(string containerId, CancellationToken cancellationToken) => Call("RemoveContainer", () => _containers.Remove(containerId));

    public Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken cancellationToken) => Call("ListContainers", () =>
        (IReadOnlyList<Container>)_containers.Values
            .Where(c => filter is null || filter.LabelSelector.All(kv => c.Status.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
            .Select(c =>
            {
                var r = new Container { Id = c.Status.Id, PodSandboxId = c.SandboxId, Metadata = c.Status.Metadata.Clone(), State = c.Status.State, CreatedAt = c.Status.CreatedAt, Image = c.Status.Image, ImageRef = c.Status.ImageRef };
                r.Labels.Add(c.Status.Labels);
                r.Annotations.Add(c.Status.Annotations);
                return r;
            }).ToList());

    public async Task<RuntimeListing> ListPodStatesAsync(IReadOnlyDictionary<string, string> labelSelector, CancellationToken cancellationToken)
    {
        await HungAsync().ConfigureAwait(false);
        return await ListPodStatesNowAsync(labelSelector).ConfigureAwait(false);
    }

    private Task<RuntimeListing> ListPodStatesNowAsync(IReadOnlyDictionary<string, string> labelSelector) => Call("ListPodStates", () =>
    {
        if (_listing is null || !ReferenceEquals(_listingSelector, labelSelector))
        {
            _listingSelector = labelSelector;
            _listing = new RuntimeListing(
                [.. _sandboxes.Values
                    .Where(s => labelSelector.All(kv => s.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
                    .Select(s => new ListedSandbox(s.Id, s.Metadata.Uid, s.State))],
                [.. _containers.Values
                    .Where(c => labelSelector.All(kv => c.Status.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value))
                    .Select(c => new ListedContainer(c.Status.Id, c.SandboxId, c.Status.State))]);
        }

        return _listing;
    });

    public async Task<ContainerStatus?> ContainerStatusAsync(string containerId, CancellationToken cancellationToken)
    {
        var status = await Call("ContainerStatus", () => _containers.TryGetValue(containerId, out var c) ? c.Status.Clone() : null).ConfigureAwait(false);
        if (AfterContainerStatus is { } after)
        {
            await after().ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>Awaited after each ContainerStatus has read its answer and before it returns it: a slow answer.</summary>
    public Func<Task>? AfterContainerStatus { get; set; }

    public Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken) =>
        Call("ExecSync", () => new ExecSyncResponse { ExitCode = command.Count > 0 && command[0] == "false" ? 1 : 0 });

    public Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken cancellationToken) =>
        Call("ListContainerStats", () => (IReadOnlyList<ContainerStats>)[]);

    public Task<Image?> ImageStatusAsync(string image, CancellationToken cancellationToken) =>
        Call("ImageStatus", () => _images.Contains(image) ? new Image { Id = "sha256:" + image } : null);

    public Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken cancellationToken) => Call("PullImage", () =>
    {
        if (UnpullableImages.Contains(image))
        {
            throw new RuntimeException(RuntimeErrorKind.Failed, $"failed to pull and unpack image \"{image}\": not found");
        }

        _images.Add(image);
        return image;
    });

    public Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken cancellationToken) =>
        Call("ListImages", () => (IReadOnlyList<Image>)_images.Select(i => new Image { Id = "sha256:" + i }).ToList());

    public Task RemoveImageAsync(string image, CancellationToken cancellationToken) => Call("RemoveImage", () => _images.Remove(image));

    private long Nanos() => (time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100 + Interlocked.Increment(ref _next);

    private Task<T> Call<T>(string name, Func<T> body)
    {
        lock (_lock)
        {
            if (RecordCalls)
            {
                Calls.Add(name);
            }

            if (!ReadOnlyCalls.Contains(name))
            {
                _listing = null;
            }

            if (Errors.TryGetValue(name, out var q) && q.Count > 0)
            {
                return Task.FromException<T>(q.Dequeue());
            }

            try
            {
                return Task.FromResult(body());
            }
            catch (RuntimeException e)
            {
                return Task.FromException<T>(e);
            }
        }
    }
}
