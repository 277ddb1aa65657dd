using System.Diagnostics;
using System.Net.Sockets;
using EdgeKube.Agent.Cri.Relist;
using EdgeKube.Agent.Cri.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeKube.Agent.Cri;

/// <summary>
/// <see cref="IContainerRuntime"/> over containerd's CRI v1 gRPC API on its unix socket. Every call
/// carries a deadline (<c>--runtime-request-timeout</c>; pulls <c>--image-pull-timeout</c>; exec and
/// stop their own timeout on top), and every gRPC failure is mapped to a <see cref="RuntimeErrorKind"/>.
/// </summary>
public sealed partial class CriRuntimeClient : IContainerRuntime, IDisposable
{
    /// <summary>The CRI API version the agent speaks; containerd answers it in <c>runtime_api_version</c>.</summary>
    public const string ApiVersion = "v1";

    private readonly string _socketPath;
    private readonly TimeSpan _requestTimeout;
    private readonly TimeSpan _pullTimeout;
    private readonly GrpcChannel _channel;
    private readonly RuntimeService.RuntimeServiceClient _runtime;
    private readonly ImageService.ImageServiceClient _images;
    private readonly CallInvoker _invoker;

    // The relist's calls: RuntimeService's own list methods, with responses read through the views of relist.proto.
    // The parsers drop the fields the views leave out: by default protobuf keeps them, as copies, to write them back.
    private static readonly Method<ListContainersRequest, ListContainersView> ListContainersViewMethod =
        new(MethodType.Unary, "runtime.v1.RuntimeService", "ListContainers", ProtoMarshaller(ListContainersRequest.Parser), ProtoMarshaller(ListContainersView.Parser.WithDiscardUnknownFields(true)));

    private static readonly Method<ListPodSandboxRequest, ListPodSandboxView> ListPodSandboxViewMethod =
        new(MethodType.Unary, "runtime.v1.RuntimeService", "ListPodSandbox", ProtoMarshaller(ListPodSandboxRequest.Parser), ProtoMarshaller(ListPodSandboxView.Parser.WithDiscardUnknownFields(true)));
    private readonly ILogger _logger;

    /// <param name="logger">At Debug, every call with its duration (the bench's startup trace reads them).</param>
    public CriRuntimeClient(string socketPath, TimeSpan requestTimeout, TimeSpan pullTimeout, ILogger<CriRuntimeClient>? logger = null)
    {
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _socketPath = socketPath;
        _requestTimeout = requestTimeout;
        _pullTimeout = pullTimeout;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = ConnectAsync,
            // A restarted containerd closes the connection; the handler then dials a new one.
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            EnableMultipleHttp2Connections = true,
        };
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            // Container lists and image lists of a busy node exceed gRPC's 4 MiB default.
            MaxReceiveMessageSize = 16 * 1024 * 1024,
        });
        _invoker = _channel.CreateCallInvoker();
        _runtime = new RuntimeService.RuntimeServiceClient(_invoker);
        _images = new ImageService.ImageServiceClient(_invoker);
    }

    public string SocketPath => _socketPath;

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(_socketPath), cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The start-up handshake: CRI Version, with an error that says what to do. Retriable when the
    /// socket is missing or nothing answers (containerd may still be starting); not when the endpoint
    /// answers but does not speak CRI v1.
    /// </summary>
    public async Task<VersionResponse> HandshakeAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(_socketPath))
        {
            throw new CriHandshakeException(
                $"containerd socket {_socketPath} does not exist: is containerd running? (set the socket with --containerd-socket)", retriable: true);
        }

        VersionResponse version;
        try
        {
            version = await _runtime.VersionAsync(new VersionRequest { Version = ApiVersion }, Options(_requestTimeout, cancellationToken)).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            throw new CriHandshakeException(
                $"{_socketPath} does not serve the CRI v1 API (runtime.v1.RuntimeService): is the CRI plugin of containerd enabled? (--containerd-socket)", retriable: false, e);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown)
        {
            throw new CriHandshakeException(
                $"containerd at {_socketPath} does not answer ({e.Status.Detail}): is containerd running? (--containerd-socket)", retriable: true, e);
        }

        if (!string.Equals(version.RuntimeApiVersion, ApiVersion, StringComparison.Ordinal))
        {
            throw new CriHandshakeException(
                $"{version.RuntimeName} {version.RuntimeVersion} at {_socketPath} speaks CRI \"{version.RuntimeApiVersion}\", not v1: containerd 1.6 or newer is needed (--containerd-socket)",
                retriable: false);
        }

        return version;
    }

    public Task<VersionResponse> VersionAsync(CancellationToken cancellationToken) =>
        Call("Version", () => _runtime.VersionAsync(new VersionRequest { Version = ApiVersion }, Options(_requestTimeout, cancellationToken)).ResponseAsync);

    public async Task<RuntimeStatus> StatusAsync(CancellationToken cancellationToken) =>
        (await Call("Status", () => _runtime.StatusAsync(new StatusRequest(), Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false)).Status;

    public async Task<string> RunPodSandboxAsync(PodSandboxConfig config, CancellationToken cancellationToken)
    {
        // Sandbox creation includes the CNI setup and the pause image: give it the pull deadline's share.
        var response = await Call("RunPodSandbox", () => _runtime.RunPodSandboxAsync(
            new RunPodSandboxRequest { Config = config }, Options(_requestTimeout * 4, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.PodSandboxId;
    }

    public Task StopPodSandboxAsync(string podSandboxId, CancellationToken cancellationToken) =>
        Idempotent("StopPodSandbox", () => _runtime.StopPodSandboxAsync(
            new StopPodSandboxRequest { PodSandboxId = podSandboxId }, Options(_requestTimeout * 2, cancellationToken)).ResponseAsync);

    public Task RemovePodSandboxAsync(string podSandboxId, CancellationToken cancellationToken) =>
        Idempotent("RemovePodSandbox", () => _runtime.RemovePodSandboxAsync(
            new RemovePodSandboxRequest { PodSandboxId = podSandboxId }, Options(_requestTimeout * 2, cancellationToken)).ResponseAsync);

    public async Task<PodSandboxStatus?> PodSandboxStatusAsync(string podSandboxId, CancellationToken cancellationToken)
    {
        try
        {
            var response = await Call("PodSandboxStatus", () => _runtime.PodSandboxStatusAsync(
                new PodSandboxStatusRequest { PodSandboxId = podSandboxId }, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
            return response.Status;
        }
        catch (RuntimeException e) when (e.Kind == RuntimeErrorKind.NotFound)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken cancellationToken)
    {
        var request = new ListPodSandboxRequest { Filter = filter };
        var response = await Call("ListPodSandbox", () => _runtime.ListPodSandboxAsync(request, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.Items;
    }

    public async Task<string> CreateContainerAsync(string podSandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken cancellationToken)
    {
        var request = new CreateContainerRequest { PodSandboxId = podSandboxId, Config = config, SandboxConfig = sandboxConfig };
        var response = await Call("CreateContainer", () => _runtime.CreateContainerAsync(request, Options(_requestTimeout * 2, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.ContainerId;
    }

    public Task StartContainerAsync(string containerId, CancellationToken cancellationToken) =>
        Call("StartContainer", () => _runtime.StartContainerAsync(
            new StartContainerRequest { ContainerId = containerId }, Options(_requestTimeout * 2, cancellationToken)).ResponseAsync);

    public Task StopContainerAsync(string containerId, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var seconds = (long)Math.Ceiling(Math.Max(0, gracePeriod.TotalSeconds));
        // The runtime waits the grace period itself: the deadline is the grace period plus the usual one.
        return Idempotent("StopContainer", () => _runtime.StopContainerAsync(
            new StopContainerRequest { ContainerId = containerId, Timeout = seconds }, Options(TimeSpan.FromSeconds(seconds) + _requestTimeout, cancellationToken)).ResponseAsync);
    }

    public Task RemoveContainerAsync(string containerId, CancellationToken cancellationToken) =>
        Idempotent("RemoveContainer", () => _runtime.RemoveContainerAsync(
            new RemoveContainerRequest { ContainerId = containerId }, Options(_requestTimeout, cancellationToken)).ResponseAsync);

    public async Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken cancellationToken)
    {
        var request = new ListContainersRequest { Filter = filter };
        var response = await Call("ListContainers", () => _runtime.ListContainersAsync(request, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.Containers;
    }

    public async Task<RuntimeListing> ListPodStatesAsync(IReadOnlyDictionary<string, string> labelSelector, CancellationToken cancellationToken)
    {
        var containerFilter = new ContainerFilter();
        var sandboxFilter = new PodSandboxFilter();
        foreach (var (key, value) in labelSelector)
        {
            containerFilter.LabelSelector[key] = value;
            sandboxFilter.LabelSelector[key] = value;
        }

        var containersRequest = new ListContainersRequest { Filter = containerFilter };
        var containerView = await Call("ListContainers", () => _invoker.AsyncUnaryCall(
            ListContainersViewMethod, null, Options(_requestTimeout, cancellationToken), containersRequest).ResponseAsync).ConfigureAwait(false);
        var sandboxesRequest = new ListPodSandboxRequest { Filter = sandboxFilter };
        var sandboxView = await Call("ListPodSandbox", () => _invoker.AsyncUnaryCall(
            ListPodSandboxViewMethod, null, Options(_requestTimeout, cancellationToken), sandboxesRequest).ResponseAsync).ConfigureAwait(false);

        var containers = new ListedContainer[containerView.Containers.Count];
        for (var i = 0; i < containers.Length; i++)
        {
            var c = containerView.Containers[i];
            containers[i] = new ListedContainer(c.Id, c.PodSandboxId, (ContainerState)c.State);
        }

        var sandboxes = new ListedSandbox[sandboxView.Items.Count];
        for (var i = 0; i < sandboxes.Length; i++)
        {
            var s = sandboxView.Items[i];
            sandboxes[i] = new ListedSandbox(s.Id, s.Metadata?.Uid ?? string.Empty, (PodSandboxState)s.State);
        }

        return new RuntimeListing(sandboxes, containers);
    }

    public async Task<ContainerStatus?> ContainerStatusAsync(string containerId, CancellationToken cancellationToken)
    {
        try
        {
            var response = await Call("ContainerStatus", () => _runtime.ContainerStatusAsync(
                new ContainerStatusRequest { ContainerId = containerId }, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
            return response.Status;
        }
        catch (RuntimeException e) when (e.Kind == RuntimeErrorKind.NotFound)
        {
            return null;
        }
    }

    public Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var request = new ExecSyncRequest { ContainerId = containerId, Timeout = (long)Math.Ceiling(timeout.TotalSeconds) };
        request.Cmd.AddRange(command);
        return Call("ExecSync", () => _runtime.ExecSyncAsync(request, Options(timeout + _requestTimeout, cancellationToken)).ResponseAsync);
    }

    public async Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken cancellationToken)
    {
        var request = new ListContainerStatsRequest { Filter = filter };
        var response = await Call("ListContainerStats", () => _runtime.ListContainerStatsAsync(request, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.Stats;
    }

    public async Task<Image?> ImageStatusAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            var response = await Call("ImageStatus", () => _images.ImageStatusAsync(
                new ImageStatusRequest { Image = new ImageSpec { Image = image } }, Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
            // CRI answers a missing image with an empty response, not NotFound.
            return response.Image;
        }
        catch (RuntimeException e) when (e.Kind == RuntimeErrorKind.NotFound)
        {
            return null;
        }
    }

    public async Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken cancellationToken)
    {
        var request = new PullImageRequest { Image = new ImageSpec { Image = image }, SandboxConfig = sandboxConfig };
        var response = await Call("PullImage", () => _images.PullImageAsync(request, Options(_pullTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.ImageRef;
    }

    public async Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken cancellationToken)
    {
        var response = await Call("ListImages", () => _images.ListImagesAsync(new ListImagesRequest(), Options(_requestTimeout, cancellationToken)).ResponseAsync).ConfigureAwait(false);
        return response.Images;
    }

    public Task RemoveImageAsync(string image, CancellationToken cancellationToken) =>
        Idempotent("RemoveImage", () => _images.RemoveImageAsync(
            new RemoveImageRequest { Image = new ImageSpec { Image = image } }, Options(_requestTimeout, cancellationToken)).ResponseAsync);

    public void Dispose() => _channel.Dispose();

    /// <summary>A marshaller for a protobuf message, writing to and reading from gRPC's buffers as the generated clients do.</summary>
    private static Marshaller<T> ProtoMarshaller<T>(MessageParser<T> parser)
        where T : IMessage<T>, IBufferMessage =>
        Marshallers.Create<T>(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    private static CallOptions Options(TimeSpan timeout, CancellationToken cancellationToken) =>
        new(deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken);

    private async Task Idempotent<T>(string call, Func<Task<T>> invoke)
    {
        try
        {
            await Call(call, invoke).ConfigureAwait(false);
        }
        catch (RuntimeException e) when (e.Kind == RuntimeErrorKind.NotFound)
        {
            // Already stopped or gone: what the caller asked for holds.
        }
    }

    private async Task<T> Call<T>(string call, Func<Task<T>> invoke)
    {
        var started = _logger.IsEnabled(LogLevel.Debug) ? Stopwatch.GetTimestamp() : 0;
        try
        {
            return await invoke().ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && e.InnerException is OperationCanceledException oce)
        {
            throw new OperationCanceledException($"CRI {call} cancelled", oce, oce.CancellationToken);
        }
        catch (RpcException e)
        {
            throw new RuntimeException(Classify(e), $"CRI {call}: {e.Status.Detail} ({e.StatusCode})", e);
        }
        finally
        {
            if (started != 0)
            {
                LogCall(call, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Debug, Message = "CRI {Call} took {Milliseconds:0.0} ms")]
    private partial void LogCall(string call, double milliseconds);

    /// <summary>gRPC status → what the caller should do (never by message text).</summary>
    internal static RuntimeErrorKind Classify(RpcException e) => e.StatusCode switch
    {
        StatusCode.NotFound => RuntimeErrorKind.NotFound,
        StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled or StatusCode.ResourceExhausted or StatusCode.Aborted => RuntimeErrorKind.Unavailable,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange or StatusCode.Unimplemented or StatusCode.PermissionDenied => RuntimeErrorKind.InvalidRequest,
        _ => RuntimeErrorKind.Failed,
    };
}
