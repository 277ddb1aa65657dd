using EdgeKube.Agent.Json;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;

namespace EdgeKube.Agent.Pods;

/// <summary>
/// The hash kubelet keeps on each container: a change to a container's definition (image, command,
/// env...) changes it, and the running container is replaced. FNV-1a over the container's JSON,
/// stable across agent versions as long as the JSON is.
/// </summary>
public static class PodHashes
{
    public static IReadOnlyDictionary<string, string> Compute(V1PodSpec spec)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in PodValidation.AllContainers(spec))
        {
            result[c.Name] = Of(c);
        }

        return result;
    }

    public static string Of(V1Container container) => Fnv1a(KubeJson.Serialize(container));

    public static string Fnv1a(string text)
    {
        const ulong offset = 14695981039346656037UL;
        const ulong prime = 1099511628211UL;
        var hash = offset;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= prime;
        }

        return hash.ToString("x16", CultureInfo.InvariantCulture);
    }
}
