using System.Text.Json.Nodes;

namespace EdgeKube.Master.Api;

/// <summary>One kind the API serves: where it lives (group/version/plural), its kind, scope and what may be done to it.</summary>
public sealed record ApiResource(
    string Group,
    string Version,
    string Plural,
    string Singular,
    string Kind,
    bool Namespaced,
    IReadOnlyList<string> Verbs,
    IReadOnlyList<string> ShortNames,
    IReadOnlyList<string> Subresources,
    bool Stored = true,
    IReadOnlyList<string>? Categories = null)
{
    /// <summary>apiVersion as objects carry it ("v1", "apps/v1").</summary>
    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>The store's resource name: plural, then ".group" for non-core groups ("deployments.apps").</summary>
    public string StoreName => Group.Length == 0 ? Plural : $"{Plural}.{Group}";
}

/// <summary>The resources this API server serves, and their discovery documents.</summary>
public static class ApiResources
{
    private static readonly string[] AllVerbs = ["create", "delete", "get", "list", "patch", "update", "watch"];

    public static readonly IReadOnlyList<ApiResource> All =
    [
        new("", "v1", "namespaces", "namespace", "Namespace", false, ["create", "delete", "get", "list", "patch", "update", "watch"], ["ns"], ["status"]),
        new("", "v1", "nodes", "node", "Node", false, AllVerbs, ["no"], ["status"]),
        new("", "v1", "pods", "pod", "Pod", true, AllVerbs, ["po"], ["status", "log", "binding"], Categories: ["all"]),
        new("", "v1", "events", "event", "Event", true, AllVerbs, ["ev"], []),
        // Listed so that `kubectl cluster-info` (which lists kube-system services) works; EdgeKube runs no service proxy.
        new("", "v1", "services", "service", "Service", true, ["get", "list", "watch"], ["svc"], [], Stored: false, Categories: ["all"]),
        new("apps", "v1", "deployments", "deployment", "Deployment", true, AllVerbs, ["deploy"], ["status", "scale"], Categories: ["all"]),
        new("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, AllVerbs, ["rs"], ["status", "scale"], Categories: ["all"]),
        new("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, AllVerbs, ["ds"], ["status"], Categories: ["all"]),
        new("batch", "v1", "jobs", "job", "Job", true, AllVerbs, [], ["status"], Categories: ["all"]),
    ];

    /// <summary>Finds a stored resource by its kind and apiVersion's group (ownerReferences name their owners this way).</summary>
    public static ApiResource? ByKind(string apiVersion, string kind)
    {
        var slash = apiVersion.IndexOf('/', StringComparison.Ordinal);
        var group = slash < 0 ? string.Empty : apiVersion[..slash];
        return All.FirstOrDefault(r => r.Group == group && r.Kind == kind && r.Stored);
    }

    /// <summary>Finds a resource by group, version and plural.</summary>
    public static ApiResource? Find(string group, string version, string plural) =>
        All.FirstOrDefault(r => r.Group == group && r.Version == version && r.Plural == plural);

    /// <summary>/api: the core group's versions.</summary>
    public static JsonObject ApiVersions(string serverAddress) => new()
    {
        ["kind"] = "APIVersions",
        ["versions"] = new JsonArray("v1"),
        ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = serverAddress }),
    };

    /// <summary>/apis: the named groups (legacy discovery; kubectl falls back to it when the answer is plain JSON).</summary>
    public static JsonObject ApiGroupList()
    {
        var groups = new JsonArray();
        foreach (var group in All.Where(r => r.Group.Length > 0).GroupBy(r => r.Group))
        {
            var versions = new JsonArray();
            foreach (var v in group.Select(r => r.Version).Distinct())
            {
                versions.Add(new JsonObject { ["groupVersion"] = $"{group.Key}/{v}", ["version"] = v });
            }

            var first = group.First();
            groups.Add(new JsonObject
            {
                ["name"] = group.Key,
                ["versions"] = versions,
                ["preferredVersion"] = new JsonObject { ["groupVersion"] = first.ApiVersion, ["version"] = first.Version },
            });
        }

        return new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups };
    }

    /// <summary>/apis/{group}: one group.</summary>
    public static JsonObject? ApiGroup(string group)
    {
        var list = ApiGroupList()["groups"]!.AsArray();
        var found = list.FirstOrDefault(g => g!["name"]!.GetValue<string>() == group);
        if (found is null)
        {
            return null;
        }

        var copy = found.DeepClone().AsObject();
        copy["kind"] = "APIGroup";
        copy["apiVersion"] = "v1";
        return copy;
    }

    /// <summary>
    /// /openapi/v3: the group versions with their documents. kubectl reads it to learn that the server
    /// validates fields itself (the <c>fieldValidation</c> parameter), and then sends
    /// <c>fieldValidation=Strict</c> instead of validating against a downloaded schema.
    /// </summary>
    public static JsonObject OpenApiRoot()
    {
        var paths = new JsonObject();
        foreach (var gv in All.Select(r => (r.Group, r.Version)).Distinct())
        {
            var path = gv.Group.Length == 0 ? $"api/{gv.Version}" : $"apis/{gv.Group}/{gv.Version}";
            paths[path] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{path}?hash=edgekube-{Version}" };
        }

        return new JsonObject { ["paths"] = paths };
    }

    private static readonly string Version = typeof(ApiResources).Assembly.GetName().Version?.ToString() ?? "0";

    /// <summary>/openapi/v3/{group version}: the operations of each resource, tagged with its group/version/kind and the query parameters it honours.</summary>
    public static JsonObject? OpenApiDocument(string group, string version)
    {
        var resources = All.Where(r => r.Group == group && r.Version == version && r.Stored).ToList();
        if (resources.Count == 0)
        {
            return null;
        }

        var paths = new JsonObject();
        foreach (var r in resources)
        {
            var root = group.Length == 0 ? $"/api/{version}" : $"/apis/{group}/{version}";
            var collection = r.Namespaced ? $"{root}/namespaces/{{namespace}}/{r.Plural}" : $"{root}/{r.Plural}";
            paths[collection] = new JsonObject { ["post"] = Operation(r, "create" + r.Kind) };
            paths[collection + "/{name}"] = new JsonObject
            {
                ["put"] = Operation(r, "replace" + r.Kind),
                ["patch"] = Operation(r, "patch" + r.Kind),
            };
        }

        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "EdgeKube", ["version"] = "v1.32.0-edgekube" },
            ["paths"] = paths,
        };
    }

    private static JsonObject Operation(ApiResource r, string id) => new()
    {
        ["operationId"] = id,
        ["parameters"] = new JsonArray(
            new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string" } },
            new JsonObject { ["name"] = "fieldManager", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string" } },
            new JsonObject { ["name"] = "dryRun", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string" } }),
        ["responses"] = new JsonObject { ["200"] = new JsonObject { ["description"] = "OK" } },
        ["x-kubernetes-action"] = id.StartsWith("create", StringComparison.Ordinal) ? "post" : id.StartsWith("patch", StringComparison.Ordinal) ? "patch" : "put",
        ["x-kubernetes-group-version-kind"] = new JsonObject { ["group"] = r.Group, ["version"] = r.Version, ["kind"] = r.Kind },
    };

    /// <summary>/api/v1 or /apis/{group}/{version}: the resources of a group version, with subresources.</summary>
    public static JsonObject? ResourceList(string group, string version)
    {
        var resources = All.Where(r => r.Group == group && r.Version == version).ToList();
        if (resources.Count == 0)
        {
            return null;
        }

        var list = new JsonArray();
        foreach (var r in resources)
        {
            var entry = new JsonObject
            {
                ["name"] = r.Plural,
                ["singularName"] = r.Singular,
                ["namespaced"] = r.Namespaced,
                ["kind"] = r.Kind,
                ["verbs"] = new JsonArray([.. r.Verbs.Select(v => (JsonNode)v)]),
            };
            if (r.ShortNames.Count > 0)
            {
                entry["shortNames"] = new JsonArray([.. r.ShortNames.Select(v => (JsonNode)v)]);
            }

            if (r.Categories is { Count: > 0 } categories)
            {
                entry["categories"] = new JsonArray([.. categories.Select(v => (JsonNode)v)]);
            }

            list.Add(entry);
            foreach (var sub in r.Subresources)
            {
                var (kind, verbs) = sub switch
                {
                    "log" => ("Pod", new[] { "get" }),
                    "binding" => ("Binding", new[] { "create" }),
                    "scale" => ("Scale", new[] { "get", "patch", "update" }),
                    _ => (r.Kind, new[] { "get", "patch", "update" }),
                };
                var subEntry = new JsonObject
                {
                    ["name"] = $"{r.Plural}/{sub}",
                    ["singularName"] = string.Empty,
                    ["namespaced"] = r.Namespaced,
                    ["kind"] = kind,
                    ["verbs"] = new JsonArray([.. verbs.Select(v => (JsonNode)v)]),
                };
                if (sub == "scale")
                {
                    // kubectl scale's client reads the Scale's group/version from here (autoscaling/v1, as kube-apiserver).
                    subEntry["group"] = "autoscaling";
                    subEntry["version"] = "v1";
                }

                list.Add(subEntry);
            }
        }

        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : $"{group}/{version}",
            ["resources"] = list,
        };
    }
}
