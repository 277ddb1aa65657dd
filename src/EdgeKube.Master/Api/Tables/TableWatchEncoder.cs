using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api.Tables;

/// <summary>
/// The objects of one Table watch (<c>kubectl get -w</c>): each event's object becomes a one-row Table; the
/// first carries the column definitions and every later one <c>"columnDefinitions": null</c>, as
/// kube-apiserver's watch encoder turns on NoHeaders once it has written an event. One instance per watch
/// connection; not thread-safe (a watch writes its events in order from one loop).
/// </summary>
public sealed class TableWatchEncoder
{
    private readonly string _resource;
    private readonly string _includeObject;
    private readonly TimeProvider _time;
    private bool _headersSent;

    /// <summary>Validates <paramref name="includeObject"/> now (throws <see cref="TableOptionsException"/>), so a bad value is a 400 before streaming starts.</summary>
    public TableWatchEncoder(string resource, string? includeObject, TimeProvider time)
    {
        _resource = resource;
        _includeObject = TableWriter.NormalizeIncludeObject(includeObject);
        _time = time;
    }

    /// <summary>The object to put in the watch event for <paramref name="obj"/>.</summary>
    /// <remarks>
    /// A v1 Status (the object of an ERROR event, e.g. 410 Gone) passes through untouched, as upstream leaves
    /// Status objects alone; it still counts as the first event, so the headers are not sent after it either.
    /// </remarks>
    public JsonObject Encode(JsonObject obj)
    {
        var first = !_headersSent;
        _headersSent = true;
        if (IsStatus(obj))
        {
            return obj;
        }

        return TableWriter.ToWatchTable(_resource, obj, _includeObject, _time.GetUtcNow(), includeColumnDefinitions: first);
    }

    private static bool IsStatus(JsonObject obj) =>
        obj["kind"] is JsonValue kind && kind.TryGetValue(out string? k) && k == "Status"
        && obj["apiVersion"] is JsonValue version && version.TryGetValue(out string? v) && v == "v1";
}
