using EdgeKube.Agent.Json;
using System.Globalization;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EdgeKube.Agent.Pods;

/// <summary>A manifest that could not be turned into a valid pod; <see cref="Exception.Message"/> says why.</summary>
public sealed class InvalidPodException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads Kubernetes v1 Pod manifests in YAML or JSON, as <c>kubectl apply -f</c> takes them.
/// YAML is converted to JSON the way kubectl does (sigs.k8s.io/yaml: plain scalars typed as YAML 1.1
/// core types, quoted scalars stay strings) and then read by the Kubernetes client's source-generated
/// JSON serializer, so both formats share one trimming-safe path.
/// </summary>
public static class PodManifest
{
    /// <summary>Parses one manifest file's text (YAML or JSON); several YAML documents are allowed.</summary>
    public static IReadOnlyList<V1Pod> Parse(string text)
    {
        var pods = new List<V1Pod>();
        foreach (var json in ToJsonDocuments(text))
        {
            pods.Add(ParseJson(json));
        }

        return pods;
    }

    /// <summary>Parses one JSON pod object.</summary>
    public static V1Pod ParseJson(string json)
    {
        using (var doc = ParseJsonDocument(json))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidPodException("manifest is not an object");
            }

            var kind = root.TryGetProperty("kind", out var k) && k.ValueKind == JsonValueKind.String ? k.GetString() : null;
            var apiVersion = root.TryGetProperty("apiVersion", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
            if (kind != "Pod")
            {
                throw new InvalidPodException($"kind must be \"Pod\", not \"{kind ?? "(missing)"}\"");
            }

            if (apiVersion != "v1")
            {
                throw new InvalidPodException($"apiVersion must be \"v1\", not \"{apiVersion ?? "(missing)"}\"");
            }
        }

        try
        {
            return KubeJson.DeserializePod(json)
                ?? throw new InvalidPodException("manifest is empty");
        }
        catch (JsonException e)
        {
            // "The JSON value could not be converted to ... Path: $.spec.containers": keep the path, drop .NET type names.
            var path = e.Path is { Length: > 0 } p ? p.TrimStart('$', '.') : "(document)";
            throw new InvalidPodException($"field {path} has the wrong type or format", e);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException or OverflowException)
        {
            throw new InvalidPodException($"invalid value: {e.Message}", e);
        }
    }

    private static JsonDocument ParseJsonDocument(string json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidPodException($"not valid JSON: line {e.LineNumber + 1}: {e.Message}", e);
        }
    }

    /// <summary>Splits YAML (or JSON, which is YAML) into one JSON text per non-empty document.</summary>
    public static IReadOnlyList<string> ToJsonDocuments(string text)
    {
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('{'))
        {
            return [text];
        }

        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new InvalidPodException($"not valid YAML: line {e.Start.Line}: {e.Message}", e);
        }

        var result = new List<string>();
        foreach (var document in stream.Documents)
        {
            if (document.RootNode is YamlScalarNode { Value: null or "" or "~" or "null" })
            {
                continue;
            }

            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                WriteNode(writer, document.RootNode, 0);
            }

            result.Add(Encoding.UTF8.GetString(buffer.ToArray()));
        }

        return result;
    }

    private static void WriteNode(Utf8JsonWriter writer, YamlNode node, int depth)
    {
        if (depth > 64)
        {
            throw new InvalidPodException("manifest is nested too deeply");
        }

        switch (node)
        {
            case YamlMappingNode map:
                writer.WriteStartObject();
                foreach (var (key, value) in map.Children)
                {
                    if (key is not YamlScalarNode { Value: { } name })
                    {
                        throw new InvalidPodException($"line {key.Start.Line}: mapping keys must be strings");
                    }

                    writer.WritePropertyName(name);
                    WriteNode(writer, value, depth + 1);
                }

                writer.WriteEndObject();
                break;
            case YamlSequenceNode seq:
                writer.WriteStartArray();
                foreach (var item in seq.Children)
                {
                    WriteNode(writer, item, depth + 1);
                }

                writer.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                WriteScalar(writer, scalar);
                break;
            default:
                throw new InvalidPodException($"line {node.Start.Line}: YAML aliases are not supported");
        }
    }

    private static void WriteScalar(Utf8JsonWriter writer, YamlScalarNode scalar)
    {
        var value = scalar.Value ?? string.Empty;
        if (scalar.Style is ScalarStyle.Plain)
        {
            switch (value)
            {
                case "" or "~" or "null" or "Null" or "NULL":
                    writer.WriteNullValue();
                    return;
                case "true" or "True" or "TRUE":
                    writer.WriteBooleanValue(true);
                    return;
                case "false" or "False" or "FALSE":
                    writer.WriteBooleanValue(false);
                    return;
            }

            if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
            {
                writer.WriteNumberValue(integer);
                return;
            }

            if (value.Length > 0 && (char.IsDigit(value[0]) || value[0] is '-' or '+' or '.')
                && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var real)
                && double.IsFinite(real))
            {
                writer.WriteNumberValue(real);
                return;
            }
        }

        writer.WriteStringValue(value);
    }
}
