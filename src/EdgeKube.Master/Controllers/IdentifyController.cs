using System.Globalization;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging;

namespace EdgeKube.Master.Controllers;

/// <summary>
/// Turns <c>kubectl annotate node NAME edgekube.io/identify=30s</c> into an identify with an end: stamps
/// <c>edgekube.io/identify-until</c> (the bridge publishes the pair to the node's identify topic), and when
/// that time has passed removes both annotations, so the LEDs stop and the same command works again.
/// A new value restarts the identify; removing the annotation stops it; a value that is not a Go duration
/// between 1ms and <see cref="MaxDuration"/> gets a Warning event and a log line and is otherwise left
/// alone. The annotations are the record: a restarted master carries on with an identify that has not ended.
/// </summary>
public sealed partial class IdentifyController(IObjectStore store, EventRecorder events, TimeProvider time, ILogger<IdentifyController> logger)
{
    /// <summary>The longest identify: long enough to walk to any rack, short enough that a forgotten one ends.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(24);

    public const string Component = "edgekube-identify";

    // What this master started or adopted, by node: the annotation value and its end (guarded by _lock).
    private readonly Dictionary<string, (string Value, DateTimeOffset Until)> _active = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<string, string> _rejected = new(StringComparer.Ordinal);

    /// <summary>The identifies running now, by node, with their end.</summary>
    public IReadOnlyDictionary<string, DateTimeOffset> Active
    {
        get
        {
            _lock.Wait();
            try
            {
                return _active.ToDictionary(a => a.Key, a => a.Value.Until, StringComparer.Ordinal);
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    public Task RunAsync(CancellationToken cancellationToken) => Task.WhenAll(FollowAsync(cancellationToken), EndAtTheirTimeAsync(cancellationToken));

    private async Task FollowAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var list = await store.ListAsync("nodes", null, cancellationToken).ConfigureAwait(false);
                foreach (var node in list.Items)
                {
                    await ReconcileAsync(node, cancellationToken).ConfigureAwait(false);
                }

                await foreach (var e in store.WatchAsync("nodes", null, list.ResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    if (e.Type == WatchEventType.Deleted)
                    {
                        await ForgetAsync(e.Key.Name, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await ReconcileAsync(e.Object, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Expired)
            {
                // Fell behind the watch: list again.
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Ends each identify at its time, within half a second (no node event need come then).</summary>
    private async Task EndAtTheirTimeAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken).ConfigureAwait(false);
                await EndDueAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (StoreException)
            {
                // Tried again on the next turn.
            }
        }
    }

    /// <summary>Finishes every identify whose time has come.</summary>
    public async Task EndDueAsync(CancellationToken cancellationToken)
    {
        List<string> due;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = time.GetUtcNow();
            due = [.. _active.Where(a => a.Value.Until <= now).Select(a => a.Key)];
        }
        finally
        {
            _lock.Release();
        }

        foreach (var name in due)
        {
            if (await store.GetAsync(new ObjectKey("nodes", string.Empty, name), cancellationToken).ConfigureAwait(false) is { } node)
            {
                await ReconcileAsync(node, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ForgetAsync(name, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task ForgetAsync(string name, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        _active.Remove(name);
        _rejected.Remove(name);
        _lock.Release();
    }

    /// <summary>Brings one node's identify annotations to where they should be; cheap when it has none.</summary>
    public async Task ReconcileAsync(JsonObject node, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ReconcileLockedAsync(node, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task ReconcileLockedAsync(JsonObject node, CancellationToken cancellationToken)
    {
        var name = node.Name();
        var annotations = node.Metadata()["annotations"] as JsonObject;
        var value = annotations?.Str(NodeKeys.Identify);
        var untilText = annotations?.Str(NodeKeys.IdentifyUntil);
        var until = ObjectMeta.ParseTime(untilText);
        var now = time.GetUtcNow();
        _active.TryGetValue(name, out var known);

        if (value is null)
        {
            if (_active.Remove(name))
            {
                LogStopped(name);
            }

            _rejected.Remove(name);
            if (untilText is not null)
            {
                await EditAsync(name, a => a.Remove(NodeKeys.IdentifyUntil), cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        if (Parse(value) is not { } duration)
        {
            _active.Remove(name);
            if (!_rejected.TryGetValue(name, out var was) || was != value)
            {
                _rejected[name] = value;
                var message = $"{NodeKeys.Identify}: \"{value}\" is not a duration between 1ms and {MaxDuration.TotalHours:0}h such as 30s or 2m; the LEDs are not flashed";
                LogInvalid(name, message);
                await events.RecordAsync(node, "Warning", "InvalidIdentify", message, Component, cancellationToken).ConfigureAwait(false);
            }

            if (untilText is not null)
            {
                // Stop an identify an earlier, valid value started: the bridge publishes only a valid pair.
                await EditAsync(name, a => a.Remove(NodeKeys.IdentifyUntil), cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        _rejected.Remove(name);
        if (until is { } end && known.Value == value && known.Until == end)
        {
            // The identify this master runs: ended at its time.
            if (now >= end)
            {
                await FinishAsync(node, value, end, cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        if (until is { } adopted && known.Value is null)
        {
            // Started before this master (re)started: carry on to its end, or finish it now.
            if (now >= adopted)
            {
                await FinishAsync(node, value, adopted, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                _active[name] = (value, adopted);
            }

            return;
        }

        // A new request: a new value, or the end stamp cleared (edgekube-master node identify restarts that way).
        var newEnd = now + duration;
        var stamp = newEnd.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
        if (await EditAsync(name, a => a.Str(NodeKeys.Identify) == value ? a.Set(NodeKeys.IdentifyUntil, stamp) : false, cancellationToken).ConfigureAwait(false) is { } updated)
        {
            _active[name] = (value, ObjectMeta.ParseTime(stamp)!.Value);
            LogStarted(name, value);
            await events.RecordAsync(updated, "Normal", "Identify", $"Flashing the node's LEDs for {value} (until {stamp})", Component, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The annotation's duration when it is a usable one.</summary>
    public static TimeSpan? Parse(string value) =>
        GoDuration.TryParse(value.Trim(), out var d) && d >= TimeSpan.FromMilliseconds(1) && d <= MaxDuration ? d : null;

    /// <summary>
    /// What the bridge publishes on the node's identify topic: the request while the node carries a valid
    /// duration and the end this controller stamped; empty (stop) otherwise.
    /// </summary>
    public static byte[] Payload(JsonObject node)
    {
        var annotations = node.Metadata()["annotations"] as JsonObject;
        if (annotations?.Str(NodeKeys.Identify) is not { } value || Parse(value) is not { } duration
            || ObjectMeta.ParseTime(annotations.Str(NodeKeys.IdentifyUntil)) is not { } until)
        {
            return [];
        }

        return System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new IdentifyRequest(value.Trim(), duration.TotalSeconds, until), ProtocolJson.Default.IdentifyRequest);
    }

    private async Task FinishAsync(JsonObject node, string value, DateTimeOffset end, CancellationToken cancellationToken)
    {
        var name = node.Name();
        var done = await EditAsync(name, a =>
        {
            // Only the identify that ended: a value changed meanwhile is a new request.
            if (a.Str(NodeKeys.Identify) != value || ObjectMeta.ParseTime(a.Str(NodeKeys.IdentifyUntil)) != end)
            {
                return false;
            }

            a.Remove(NodeKeys.Identify);
            a.Remove(NodeKeys.IdentifyUntil);
            return true;
        }, cancellationToken).ConfigureAwait(false);
        _active.Remove(name);
        if (done is not null)
        {
            LogFinished(name, value);
        }
    }

    /// <summary>
    /// Applies <paramref name="edit"/> to the node's annotations and stores it, again on a conflict (the bridge
    /// writes node status meanwhile). The edit returns false when there is nothing to do. Returns the stored node.
    /// </summary>
    private async Task<JsonObject?> EditAsync(string name, Func<JsonObject, bool> edit, CancellationToken cancellationToken)
    {
        var key = new ObjectKey("nodes", string.Empty, name);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            if (await store.GetAsync(key, cancellationToken).ConfigureAwait(false) is not { } node)
            {
                return null;
            }

            if (!edit(node.Metadata().Obj("annotations")))
            {
                return null;
            }

            try
            {
                return await store.UpdateAsync(key, node, node.ResourceVersion(), cancellationToken).ConfigureAwait(false);
            }
            catch (StoreException e) when (e.Kind == StoreErrorKind.Conflict)
            {
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 5400, Level = LogLevel.Information, Message = "Node {Node}: identify for {Duration}")]
    private partial void LogStarted(string node, string duration);

    [LoggerMessage(EventId = 5401, Level = LogLevel.Information, Message = "Node {Node}: identify ({Duration}) finished")]
    private partial void LogFinished(string node, string duration);

    [LoggerMessage(EventId = 5402, Level = LogLevel.Information, Message = "Node {Node}: identify stopped (annotation removed)")]
    private partial void LogStopped(string node);

    [LoggerMessage(EventId = 5403, Level = LogLevel.Warning, Message = "Node {Node}: {Message}")]
    private partial void LogInvalid(string node, string message);
}

internal static class AnnotationEdits
{
    /// <summary>Sets <paramref name="key"/>; true when that changed something.</summary>
    public static bool Set(this JsonObject annotations, string key, string value)
    {
        if (annotations.Str(key) == value)
        {
            return false;
        }

        annotations[key] = value;
        return true;
    }
}
