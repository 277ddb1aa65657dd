using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Patching;
using EdgeKube.Master.Api.Selectors;
using EdgeKube.Master.Api.Tables;
using EdgeKube.Master.Security;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Api;

/// <summary>Fetches a container's log from the node that runs it (the MQTT bridge implements it).</summary>
public interface IPodLogs
{
    Task<LogsReply> GetAsync(string node, LogsRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// The subset of the Kubernetes REST API that kubectl drives: discovery, /version, and the resources of
/// <see cref="ApiResources"/> with get, list (label and field selectors, server-side tables), watch,
/// create, update, the three patch types, delete (graceful for bound pods), pods/status, pods/binding
/// and pods/log. HTTPS with the master's certificate; every request needs the admin bearer token.
/// </summary>
public sealed partial class ApiServer(
    IObjectStore store,
    AdminCredentials admin,
    MasterPki pki,
    IPEndPoint listen,
    IPodLogs logs,
    TimeProvider time,
    ILoggerFactory loggers) : IAsyncDisposable
{
    private const int MaxBodyBytes = 3 * 1024 * 1024;
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private readonly ILogger<ApiServer> _logger = loggers.CreateLogger<ApiServer>();
    private readonly ObjectWriter _writer = new(store, time);
    private WebApplication? _app;

    /// <summary>What <c>/metrics</c> serves; 404 when null.</summary>
    public MasterMetrics? Metrics { get; init; }

    /// <summary>The URL clients use, with the port actually bound.</summary>
    public string Url { get; private set; } = string.Empty;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = MaxBodyBytes;
            k.Listen(listen, l => l.UseHttps(pki.Server));
        });
        _app = builder.Build();
        _app.Run(HandleAsync);
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = _app.Urls.FirstOrDefault() ?? $"https://{listen}";
        var port = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal).Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port;
        var host = listen.Address.Equals(IPAddress.Any) ? "127.0.0.1" : listen.Address.ToString();
        Url = $"https://{host}:{port}";
        LogListening(Url);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var started = _logger.IsEnabled(LogLevel.Debug) ? Stopwatch.GetTimestamp() : 0;
        try
        {
            if (!admin.IsValid(request.Headers.Authorization))
            {
                throw new ApiError(401, "Unauthorized", "Unauthorized");
            }

            await RouteAsync(context).ConfigureAwait(false);
        }
        catch (ApiError e)
        {
            if (!context.Response.HasStarted)
            {
                await WriteJsonAsync(context, e.ToStatus(), e.Code).ConfigureAwait(false);
            }
        }
        catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
        {
            if (!context.Response.HasStarted)
            {
                await WriteJsonAsync(context, ApiError.Gone(e.Message).ToStatus(), 410).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is JsonException or PatchException or SelectorException or FormatException or InvalidOperationException)
        {
            if (!context.Response.HasStarted)
            {
                await WriteJsonAsync(context, ApiError.BadRequest(e.Message).ToStatus(), 400).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
        catch (BadHttpRequestException e)
        {
            if (!context.Response.HasStarted)
            {
                await WriteJsonAsync(context, new ApiError(e.StatusCode, "RequestEntityTooLarge", e.Message).ToStatus(), e.StatusCode).ConfigureAwait(false);
            }
        }
        finally
        {
            if (started != 0)
            {
                LogRequest(request.Method, request.Path.Value ?? string.Empty, context.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }

    private async Task RouteAsync(HttpContext context)
    {
        var path = context.Request.Path.Value?.TrimEnd('/') ?? string.Empty;
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        var method = context.Request.Method;

        switch (parts)
        {
            case ["version"]:
                await WriteJsonAsync(context, VersionInfo()).ConfigureAwait(false);
                return;
            case ["healthz" or "livez" or "readyz"]:
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync("ok", context.RequestAborted).ConfigureAwait(false);
                return;
            case ["metrics"] when Metrics is not null && method == "GET":
                // Behind the bearer token like everything else, as kube-apiserver's own /metrics.
                var metrics = await Metrics.RenderAsync(context.RequestAborted).ConfigureAwait(false);
                context.Response.ContentType = MasterMetrics.ContentType;
                await context.Response.WriteAsync(metrics, context.RequestAborted).ConfigureAwait(false);
                return;
            case ["api"]:
                await WriteJsonAsync(context, ApiResources.ApiVersions(Url.Replace("https://", string.Empty, StringComparison.Ordinal))).ConfigureAwait(false);
                return;
            case ["apis"]:
                await WriteJsonAsync(context, ApiResources.ApiGroupList()).ConfigureAwait(false);
                return;
            case ["apis", var g]:
                await WriteJsonAsync(context, ApiResources.ApiGroup(g) ?? throw new ApiError(404, "NotFound", "the server could not find the requested resource")).ConfigureAwait(false);
                return;
            case ["openapi", "v3"]:
                await WriteJsonAsync(context, ApiResources.OpenApiRoot()).ConfigureAwait(false);
                return;
            case ["openapi", "v3", "api", var ov]:
                await WriteJsonAsync(context, ApiResources.OpenApiDocument(string.Empty, ov) ?? throw NotFoundPath()).ConfigureAwait(false);
                return;
            case ["openapi", "v3", "apis", var og, var ov]:
                await WriteJsonAsync(context, ApiResources.OpenApiDocument(og, ov) ?? throw NotFoundPath()).ConfigureAwait(false);
                return;
            case ["api", var v]:
                await WriteJsonAsync(context, ApiResources.ResourceList(string.Empty, v) ?? throw NotFoundPath()).ConfigureAwait(false);
                return;
            case ["apis", var g, var v]:
                await WriteJsonAsync(context, ApiResources.ResourceList(g, v) ?? throw NotFoundPath()).ConfigureAwait(false);
                return;
        }

        string group, version;
        string[] rest;
        if (parts is ["api", var cv, .. var r1])
        {
            (group, version, rest) = (string.Empty, cv, r1);
        }
        else if (parts is ["apis", var g, var gv, .. var r2])
        {
            (group, version, rest) = (g, gv, r2);
        }
        else
        {
            throw NotFoundPath();
        }

        // namespaces/{ns}/{resource}[/{name}[/{sub}]] or {resource}[/{name}[/{sub}]]; namespaces/{name}[/{sub}] is the Namespace itself.
        string? ns = null;
        if (rest is ["namespaces", var n, var res, ..] && res != "status" && res != "finalize")
        {
            ns = n;
            rest = rest[2..];
        }

        if (rest.Length is 0 or > 3)
        {
            throw NotFoundPath();
        }

        var resource = ApiResources.Find(group, version, rest[0]) ?? throw NotFoundPath();
        if (resource.Namespaced && ns is null && rest.Length > 1)
        {
            throw NotFoundPath();
        }

        if (!resource.Namespaced && ns is not null)
        {
            throw NotFoundPath();
        }

        var name = rest.Length > 1 ? rest[1] : null;
        var sub = rest.Length > 2 ? rest[2] : null;
        if (sub is not null && !resource.Subresources.Contains(sub))
        {
            throw NotFoundPath();
        }

        var target = new Target(resource, ns, name, sub);
        switch (method)
        {
            case "GET" when name is null:
                if (IsWatch(context.Request))
                {
                    await WatchAsync(context, target).ConfigureAwait(false);
                }
                else
                {
                    await ListAsync(context, target).ConfigureAwait(false);
                }

                return;
            case "GET" when sub == "scale":
                await WriteJsonAsync(context, Scale(target.Resource, await LoadAsync(target, context.RequestAborted).ConfigureAwait(false))).ConfigureAwait(false);
                return;
            case "PUT" or "PATCH" when sub == "scale":
                await UpdateScaleAsync(context, target).ConfigureAwait(false);
                return;
            case "GET" when sub == "log":
                await LogsAsync(context, target).ConfigureAwait(false);
                return;
            case "GET":
                await GetAsync(context, target).ConfigureAwait(false);
                return;
            case "POST" when sub == "binding":
                await BindAsync(context, target).ConfigureAwait(false);
                return;
            case "POST" when name is null:
                await CreateAsync(context, target).ConfigureAwait(false);
                return;
            case "PUT" when name is not null:
                await UpdateAsync(context, target).ConfigureAwait(false);
                return;
            case "PATCH" when name is not null:
                await PatchAsync(context, target).ConfigureAwait(false);
                return;
            case "DELETE" when name is not null && sub is null:
                await DeleteAsync(context, target).ConfigureAwait(false);
                return;
            default:
                throw ApiError.MethodNotAllowed($"the server does not allow this method on the requested resource");
        }
    }

    private static ApiError NotFoundPath() => new(404, "NotFound", "the server could not find the requested resource");

    /// <summary>What a request addresses.</summary>
    private sealed record Target(ApiResource Resource, string? Namespace, string? Name, string? Subresource)
    {
        public ObjectKey Key => new(Resource.StoreName, Namespace ?? string.Empty, Name ?? string.Empty);
    }

    private JsonObject VersionInfo() => new()
    {
        ["major"] = "1",
        ["minor"] = "32",
        ["gitVersion"] = "v1.32.0-edgekube",
        ["gitCommit"] = "edgekube",
        ["gitTreeState"] = "clean",
        ["buildDate"] = "2026-01-01T00:00:00Z",
        ["goVersion"] = "dotnet" + Environment.Version.ToString(),
        ["compiler"] = "dotnet",
        ["platform"] = $"linux/{(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "arm64" : "amd64")}",
    };

    private static bool IsWatch(HttpRequest request) =>
        request.Query["watch"].ToString() is "true" or "1";

    private static bool WantsTable(HttpRequest request) =>
        request.Headers.Accept.ToString().Contains("as=Table", StringComparison.Ordinal);

    // ----- reads -----

    private async Task GetAsync(HttpContext context, Target target)
    {
        var obj = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
        if (WantsTable(context.Request))
        {
            await WriteJsonAsync(context, TableWriter.ToTable(target.Resource.StoreName, [obj], obj.ResourceVersion().ToString(System.Globalization.CultureInfo.InvariantCulture),
                context.Request.Query["includeObject"].ToString() is { Length: > 0 } io ? io : null, time.GetUtcNow())).ConfigureAwait(false);
            return;
        }

        await WriteJsonAsync(context, obj).ConfigureAwait(false);
    }

    private async Task<JsonObject> LoadAsync(Target target, CancellationToken cancellationToken)
    {
        if (!target.Resource.Stored)
        {
            throw ApiError.NotFound(target.Resource, target.Name!);
        }

        return await store.GetAsync(target.Key, cancellationToken).ConfigureAwait(false) ?? throw ApiError.NotFound(target.Resource, target.Name!);
    }

    private async Task ListAsync(HttpContext context, Target target)
    {
        var labels = LabelSelector.Parse(context.Request.Query["labelSelector"].ToString());
        var fields = FieldSelector.Parse(context.Request.Query["fieldSelector"].ToString());
        var (items, rv) = target.Resource.Stored
            ? await ListMatchingAsync(target, labels, fields, context.RequestAborted).ConfigureAwait(false)
            : ([], store.CurrentResourceVersion);
        var rvText = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (WantsTable(context.Request))
        {
            await WriteJsonAsync(context, TableWriter.ToTable(target.Resource.StoreName, items, rvText,
                context.Request.Query["includeObject"].ToString() is { Length: > 0 } io ? io : null, time.GetUtcNow())).ConfigureAwait(false);
            return;
        }

        var list = new JsonObject
        {
            ["kind"] = target.Resource.Kind + "List",
            ["apiVersion"] = target.Resource.ApiVersion,
            ["metadata"] = new JsonObject { ["resourceVersion"] = rvText },
            ["items"] = new JsonArray([.. items]),
        };
        await WriteJsonAsync(context, list).ConfigureAwait(false);
    }

    private async Task<(List<JsonObject> Items, long ResourceVersion)> ListMatchingAsync(Target target, LabelSelector labels, FieldSelector fields, CancellationToken cancellationToken)
    {
        var list = await store.ListAsync(target.Resource.StoreName, target.Namespace, cancellationToken).ConfigureAwait(false);
        var items = list.Items.Where(o => labels.Matches(o.Labels()) && fields.Matches(o)).ToList();
        return (items, list.ResourceVersion);
    }

    private async Task WatchAsync(HttpContext context, Target target)
    {
        var request = context.Request;
        var labels = LabelSelector.Parse(request.Query["labelSelector"].ToString());
        var fields = FieldSelector.Parse(request.Query["fieldSelector"].ToString());
        var table = WantsTable(request);
        var includeObject = request.Query["includeObject"].ToString() is { Length: > 0 } io ? io : null;
        long.TryParse(request.Query["resourceVersion"].ToString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var since);
        var timeout = int.TryParse(request.Query["timeoutSeconds"].ToString(), System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromMinutes(30);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        cts.CancelAfter(timeout);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-cache, private";
        await context.Response.StartAsync(cts.Token).ConfigureAwait(false);
        // Send the headers now: client-go's reflectors (kubectl rollout status) cannot cancel a watch request
        // before its response starts, and wait for it before exiting.
        await context.Response.Body.FlushAsync(cts.Token).ConfigureAwait(false);

        var first = true;
        // A watch without a resourceVersion starts with the current state as ADDED events, as the API server does.
        if (since == 0 && target.Resource.Stored)
        {
            var (items, rv) = await ListMatchingAsync(target, labels, fields, cts.Token).ConfigureAwait(false);
            foreach (var item in items)
            {
                await WriteEventAsync(context, "ADDED", item, target, table, includeObject, first, cts.Token).ConfigureAwait(false);
                first = false;
            }

            since = rv;
        }

        if (!target.Resource.Stored)
        {
            await Task.Delay(Timeout.Infinite, cts.Token).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
            return;
        }

        try
        {
            await foreach (var e in store.WatchAsync(target.Resource.StoreName, target.Namespace, since, cts.Token).ConfigureAwait(false))
            {
                if (target.Name is not null && e.Key.Name != target.Name)
                {
                    continue;
                }

                var matches = labels.Matches(e.Object.Labels()) && fields.Matches(e.Object);
                if (!matches)
                {
                    continue;
                }

                var type = e.Type switch { WatchEventType.Added => "ADDED", WatchEventType.Modified => "MODIFIED", _ => "DELETED" };
                await WriteEventAsync(context, type, e.Object, target, table, includeObject, first, cts.Token).ConfigureAwait(false);
                first = false;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
        {
            var error = new JsonObject { ["type"] = "ERROR", ["object"] = ApiError.Gone(e.Message).ToStatus() };
            await WriteLineAsync(context, error, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private async Task WriteEventAsync(HttpContext context, string type, JsonObject obj, Target target, bool table, string? includeObject, bool first, CancellationToken cancellationToken)
    {
        JsonObject payload = obj;
        if (table)
        {
            payload = TableWriter.ToTable(target.Resource.StoreName, [obj], obj.ResourceVersion().ToString(System.Globalization.CultureInfo.InvariantCulture), includeObject, time.GetUtcNow());
            if (!first)
            {
                // As the API server: column definitions go with the first event only.
                payload["columnDefinitions"] = new JsonArray();
            }
        }

        await WriteLineAsync(context, new JsonObject { ["type"] = type, ["object"] = payload }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteLineAsync(HttpContext context, JsonObject obj, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(obj.ToJsonString(Compact) + "\n");
        await context.Response.Body.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    // ----- writes -----

    private async Task<JsonObject> ReadBodyAsync(HttpContext context)
    {
        if ((context.Request.ContentType ?? string.Empty).StartsWith(Protobuf.KubeProtobuf.MediaType, StringComparison.Ordinal))
        {
            // kubectl's typed clients (create namespace, create deployment, create job) send protobuf.
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            return Protobuf.KubeProtobuf.Decode(buffer.ToArray());
        }

        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
        var node = JsonNode.Parse(text) ?? throw ApiError.BadRequest("the request body is empty");
        return node as JsonObject ?? throw ApiError.BadRequest("the request body must be a JSON object");
    }

    private async Task CreateAsync(HttpContext context, Target target)
    {
        if (!target.Resource.Verbs.Contains("create"))
        {
            throw ApiError.MethodNotAllowed($"create is not supported on {target.Resource.Plural}");
        }

        var obj = await ReadBodyAsync(context).ConfigureAwait(false);
        CheckKind(obj, target.Resource);
        var created = await _writer.CreateAsync(target.Resource, target.Namespace, obj, context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, created, 201).ConfigureAwait(false);
    }

    /// <summary>Defaults, validates and stores a new object (the rules of <see cref="ObjectWriter"/>).</summary>
    public Task<JsonObject> CreateObjectAsync(ApiResource resource, JsonObject obj, CancellationToken cancellationToken) =>
        _writer.CreateObjectAsync(resource, obj, cancellationToken);

    private async Task UpdateAsync(HttpContext context, Target target)
    {
        var obj = await ReadBodyAsync(context).ConfigureAwait(false);
        CheckKind(obj, target.Resource);
        if (obj.Name() != target.Name)
        {
            throw ApiError.BadRequest($"the name of the object ({obj.Name()}) does not match the name on the URL ({target.Name})");
        }

        var expected = obj.ResourceVersion();
        var current = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
        var updated = await ReplaceAsync(target, current, obj, expected == 0 ? null : expected, context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, updated).ConfigureAwait(false);
    }

    private async Task PatchAsync(HttpContext context, Target target)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
        var contentType = context.Request.ContentType ?? string.Empty;
        for (var attempt = 0; ; attempt++)
        {
            var current = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
            var patched = Patches.Apply(contentType, current, body, target.Resource.ApiVersion, target.Resource.Kind);
            var expected = patched.ResourceVersion();
            try
            {
                // A patch that names no resourceVersion applies to whatever is current: retry on a race.
                var updated = await ReplaceAsync(target, current, patched, expected == 0 ? current.ResourceVersion() : expected, context.RequestAborted).ConfigureAwait(false);
                await WriteJsonAsync(context, updated).ConfigureAwait(false);
                return;
            }
            catch (ApiError e) when (e.Reason == "Conflict" && attempt < 5 && expected == current.ResourceVersion())
            {
            }
        }
    }

    /// <summary>An update through the API: what may change, and the status / main resource split.</summary>
    private async Task<JsonObject> ReplaceAsync(Target target, JsonObject current, JsonObject updated, long? expected, CancellationToken cancellationToken)
    {
        var meta = updated.Metadata();
        var old = current.Metadata();
        // Identity and system fields are the server's.
        foreach (var field in new[] { "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name", "generation" })
        {
            if (old[field] is { } value)
            {
                meta[field] = value.DeepClone();
            }
            else
            {
                meta.Remove(field);
            }
        }

        if (old["deletionTimestamp"] is not null && target.Subresource != "status"
            && ObjectWriter.Finalizers(updated).Except(ObjectWriter.Finalizers(current), StringComparer.Ordinal).ToList() is { Count: > 0 } added)
        {
            // Finalizers may only go from an object being deleted, or it might never go.
            throw ApiError.Invalid(target.Resource, target.Name!, [$"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{string.Join(", ", added.Select(f => $"\"{f}\""))}}}"]);
        }

        updated["apiVersion"] = target.Resource.ApiVersion;
        updated["kind"] = target.Resource.Kind;
        if (target.Subresource == "status")
        {
            // Only the status changes through /status.
            var merged = current.DeepClone().AsObject();
            merged["status"] = updated["status"]?.DeepClone();
            merged["metadata"] = current["metadata"]!.DeepClone();
            updated = merged;
        }
        else
        {
            // The main resource never changes the status (as kube-apiserver for pods and nodes).
            if (current["status"] is { } status)
            {
                updated["status"] = status.DeepClone();
            }
            else
            {
                updated.Remove("status");
            }

            if (target.Resource.Kind == "Pod")
            {
                foreach (var list in new[] { "containers", "initContainers" })
                {
                    foreach (var c in (updated["spec"]?[list] as JsonArray ?? []).OfType<JsonObject>())
                    {
                        c["imagePullPolicy"] ??= PodRules.DefaultPullPolicy(c.Str("image") ?? string.Empty);
                    }
                }

                var errors = PodRules.Validate(updated);
                if (PodRules.ValidateUpdate(current, updated) is { } forbidden)
                {
                    errors.Add(forbidden);
                }

                if (errors.Count > 0)
                {
                    throw ApiError.Invalid(target.Resource, target.Name!, errors);
                }
            }

            if (WorkloadRules.IsWorkload(target.Resource.Kind))
            {
                WorkloadRules.ApplyDefaults(updated);
                var errors = WorkloadRules.Validate(updated);
                errors.AddRange(WorkloadRules.ValidateUpdate(current, updated));
                if (errors.Count > 0)
                {
                    throw ApiError.Invalid(target.Resource, target.Name!, errors);
                }

                // metadata.generation counts changes of the spec; controllers report the one they saw as status.observedGeneration.
                if (!JsonNode.DeepEquals(current["spec"], updated["spec"]))
                {
                    meta["generation"] = (current.Metadata()["generation"]?.GetValue<long>() ?? 0) + 1;
                }
            }
        }

        try
        {
            var stored = await store.UpdateAsync(target.Key, updated, expected, cancellationToken).ConfigureAwait(false);
            return await _writer.RemoveIfReleasedAsync(target.Key, stored, cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException e)
        {
            throw ApiError.From(e, target.Resource, target.Name!);
        }
    }

    /// <summary>The autoscaling/v1 Scale of a deployment or replica set, as the /scale subresource serves it.</summary>
    private static JsonObject Scale(ApiResource resource, JsonObject obj)
    {
        string selector;
        try
        {
            selector = LabelSelector.FromJson(obj["spec"]?["selector"]).ToString();
        }
        catch (SelectorException)
        {
            selector = string.Empty;
        }

        return new JsonObject
        {
            ["kind"] = "Scale",
            ["apiVersion"] = "autoscaling/v1",
            ["metadata"] = new JsonObject
            {
                ["name"] = obj.Name(),
                ["namespace"] = obj.Namespace(),
                ["uid"] = obj.Uid(),
                ["resourceVersion"] = obj.Metadata().Str("resourceVersion"),
                ["creationTimestamp"] = obj.Metadata().Str("creationTimestamp"),
            },
            ["spec"] = new JsonObject { ["replicas"] = obj["spec"]?["replicas"]?.GetValue<long>() ?? 1 },
            ["status"] = new JsonObject { ["replicas"] = obj["status"]?["replicas"]?.GetValue<long>() ?? 0, ["selector"] = selector },
        };
    }

    /// <summary>PUT or PATCH of /scale (kubectl scale sends a merge patch of spec.replicas): the replica count goes to the object's spec.</summary>
    private async Task UpdateScaleAsync(HttpContext context, Target target)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
        var scaleResource = target.Resource with { Group = "autoscaling", Version = "v1", Plural = target.Resource.Plural, Kind = "Scale" };
        for (var attempt = 0; ; attempt++)
        {
            var current = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
            var scale = Scale(target.Resource, current);
            var wanted = context.Request.Method == "PUT"
                ? JsonNode.Parse(body) as JsonObject ?? throw ApiError.BadRequest("the request body must be a JSON object")
                : Patches.Apply(context.Request.ContentType ?? string.Empty, scale, body, "autoscaling/v1", "Scale");
            var expected = wanted.ResourceVersion();
            if (expected != 0 && expected != current.ResourceVersion())
            {
                throw ApiError.Conflict(target.Resource, target.Name!);
            }

            var replicas = wanted["spec"]?["replicas"] is JsonValue r && r.TryGetValue<long>(out var n) ? n : 0;
            if (replicas < 0)
            {
                throw ApiError.Invalid(scaleResource, target.Name!, [$"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"]);
            }

            var updated = current.DeepClone().AsObject();
            updated.Obj("spec")["replicas"] = replicas;
            try
            {
                var stored = await ReplaceAsync(target with { Subresource = null }, current, updated, current.ResourceVersion(), context.RequestAborted).ConfigureAwait(false);
                await WriteJsonAsync(context, Scale(target.Resource, stored)).ConfigureAwait(false);
                return;
            }
            catch (ApiError e) when (e.Reason == "Conflict" && attempt < 5 && expected == 0)
            {
            }
        }
    }

    private async Task BindAsync(HttpContext context, Target target)
    {
        var binding = await ReadBodyAsync(context).ConfigureAwait(false);
        var node = binding["target"]?["name"]?.GetValue<string>() ?? throw ApiError.BadRequest("binding.target.name: Required value");
        var pod = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
        if (pod["spec"]?["nodeName"] is JsonValue bound)
        {
            throw new ApiError(409, "Conflict", $"Operation cannot be fulfilled on pods/binding \"{target.Name}\": pod {target.Name} is already assigned to node \"{bound}\"");
        }

        pod.Obj("spec")["nodeName"] = node;
        await store.UpdateAsync(target.Key, pod, pod.ResourceVersion(), context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, new JsonObject { ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Success", ["code"] = 201 }, 201).ConfigureAwait(false);
    }

    private async Task DeleteAsync(HttpContext context, Target target)
    {
        long? grace = null;
        var query = context.Request.Query;
        if (long.TryParse(query["gracePeriodSeconds"].ToString(), System.Globalization.CultureInfo.InvariantCulture, out var q))
        {
            grace = q;
        }

        var policy = query["propagationPolicy"].ToString() is { Length: > 0 } p ? p : null;
        if (policy is null && query["orphanDependents"].ToString() is "true")
        {
            policy = "Orphan";
        }

        if (context.Request.ContentLength is > 0)
        {
            var options = await ReadBodyAsync(context).ConfigureAwait(false);
            if (options["gracePeriodSeconds"] is JsonValue g && g.TryGetValue<long>(out var fromBody))
            {
                grace = fromBody;
            }

            if (options.Str("propagationPolicy") is { Length: > 0 } bodyPolicy)
            {
                policy = bodyPolicy;
            }
            else if (options["orphanDependents"] is JsonValue o && o.TryGetValue<bool>(out var orphan) && orphan)
            {
                policy = "Orphan";
            }
        }

        var current = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
        var result = await _writer.DeleteAsync(target.Resource, current, grace, policy, context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, result).ConfigureAwait(false);
    }

    /// <summary>Deletes an object with the default (background) propagation; see <see cref="ObjectWriter.DeleteAsync"/>.</summary>
    public Task<JsonObject> DeleteObjectAsync(ApiResource resource, JsonObject current, long? grace, CancellationToken cancellationToken) =>
        _writer.DeleteAsync(resource, current, grace, null, cancellationToken);

    // ----- logs -----

    private async Task LogsAsync(HttpContext context, Target target)
    {
        var pod = await LoadAsync(target, context.RequestAborted).ConfigureAwait(false);
        var query = context.Request.Query;
        var containers = (pod["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>().Select(c => c.Str("name")!).ToList();
        var container = query["container"].ToString() is { Length: > 0 } c ? c : null;
        if (container is null)
        {
            if (containers.Count != 1)
            {
                throw ApiError.BadRequest($"a container name must be specified for pod {target.Name}, choose one of: [{string.Join(' ', containers)}]");
            }

            container = containers[0];
        }

        var node = pod["spec"]?["nodeName"]?.GetValue<string>();
        if (node is null)
        {
            throw ApiError.BadRequest($"container \"{container}\" in pod \"{target.Name}\" is waiting to start: ContainerCreating");
        }

        long? tail = long.TryParse(query["tailLines"].ToString(), System.Globalization.CultureInfo.InvariantCulture, out var t) ? t : null;
        var follow = query["follow"].ToString() is "true" or "1";
        var previous = query["previous"].ToString() is "true" or "1";
        var timestamps = query["timestamps"].ToString() is "true" or "1";
        var request = new LogsRequest(target.Namespace!, target.Name!, container, tail, previous, null, timestamps);
        var reply = await logs.GetAsync(node, request, context.RequestAborted).ConfigureAwait(false);
        if (reply.Error is { } error)
        {
            throw ApiError.BadRequest(error);
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync(reply.Content, context.RequestAborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        if (!follow)
        {
            return;
        }

        // -f: ask the node again from where the last answer ended, until the container stops or the client goes.
        var offset = reply.Offset;
        while (!context.RequestAborted.IsCancellationRequested && reply.Running)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), time, context.RequestAborted).ConfigureAwait(false);
            reply = await logs.GetAsync(node, request with { TailLines = null, Offset = offset }, context.RequestAborted).ConfigureAwait(false);
            if (reply.Error is not null)
            {
                return;
            }

            if (reply.Content.Length > 0)
            {
                await context.Response.WriteAsync(reply.Content, context.RequestAborted).ConfigureAwait(false);
                await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }

            offset = reply.Offset;
        }
    }

    // ----- helpers -----

    private static void CheckKind(JsonObject obj, ApiResource resource)
    {
        var kind = obj.Str("kind");
        if (kind is { Length: > 0 } && kind != resource.Kind)
        {
            throw ApiError.BadRequest($"the API version in the data ({obj.Str("apiVersion")}) / kind ({kind}) does not match the expected {resource.ApiVersion}, Kind={resource.Kind}");
        }
    }

    private static async Task WriteJsonAsync(HttpContext context, JsonObject body, int code = 200)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(Compact), context.RequestAborted).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "{Method} {Path}: {Code} in {Milliseconds:0.0} ms")]
    private partial void LogRequest(string method, string path, int code, double milliseconds);

    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "API server listening on {Url}")]
    private partial void LogListening(string url);
}
