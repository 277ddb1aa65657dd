using System.Text.Json.Nodes;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Api;

/// <summary>A request failed; carries the Kubernetes <c>Status</c> the client gets (kubectl prints its message).</summary>
public sealed class ApiError(int code, string reason, string message, string? name = null, string? kind = null, string? group = null, IReadOnlyList<string>? causes = null) : Exception(message)
{
    public int Code { get; } = code;

    public string Reason { get; } = reason;

    public JsonObject ToStatus()
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = Message,
            ["reason"] = Reason,
            ["code"] = Code,
        };
        if (name is not null || kind is not null)
        {
            var details = new JsonObject();
            if (name is not null)
            {
                details["name"] = name;
            }

            if (group is { Length: > 0 })
            {
                details["group"] = group;
            }

            if (kind is not null)
            {
                details["kind"] = kind;
            }

            if (causes is { Count: > 0 })
            {
                // kubectl prints each cause as "* field: message".
                var list = new JsonArray();
                foreach (var cause in causes)
                {
                    var colon = cause.IndexOf(": ", StringComparison.Ordinal);
                    list.Add(new JsonObject
                    {
                        ["reason"] = "FieldValueInvalid",
                        ["message"] = colon > 0 ? cause[(colon + 2)..] : cause,
                        ["field"] = colon > 0 ? cause[..colon] : string.Empty,
                    });
                }

                details["causes"] = list;
            }

            status["details"] = details;
        }

        return status;
    }

    public static ApiError NotFound(ApiResource r, string name) =>
        new(404, "NotFound", $"{Qualified(r)} \"{name}\" not found", name, r.Plural, r.Group);

    public static ApiError AlreadyExists(ApiResource r, string name) =>
        new(409, "AlreadyExists", $"{Qualified(r)} \"{name}\" already exists", name, r.Plural, r.Group);

    public static ApiError Conflict(ApiResource r, string name) =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {Qualified(r)} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", name, r.Plural, r.Group);

    public static ApiError Invalid(ApiResource r, string name, IEnumerable<string> causes) =>
        new(422, "Invalid", $"{r.Kind} \"{name}\" is invalid: {string.Join(", ", causes)}", name, r.Kind, r.Group, [.. causes]);

    public static ApiError BadRequest(string message) => new(400, "BadRequest", message);

    public static ApiError MethodNotAllowed(string message) => new(405, "MethodNotAllowed", message);

    public static ApiError Gone(string message) => new(410, "Expired", message);

    /// <summary>Maps a store failure to the API's status.</summary>
    public static ApiError From(StoreException e, ApiResource r, string name) => e.Kind switch
    {
        StoreErrorKind.NotFound => NotFound(r, name),
        StoreErrorKind.AlreadyExists => AlreadyExists(r, name),
        StoreErrorKind.Conflict => Conflict(r, name),
        _ => Gone(e.Message),
    };

    private static string Qualified(ApiResource r) => r.Group.Length == 0 ? r.Plural : $"{r.Plural}.{r.Group}";
}
