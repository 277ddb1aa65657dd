using System.Text.Json.Serialization;

namespace EdgeKube.Agent.Store;

/// <summary>Source-generated JSON for the agent's own state files (trimming- and AOT-safe).</summary>
[JsonSerializable(typeof(PersistedPod))]
[JsonSerializable(typeof(PersistedStatus))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = false)]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
