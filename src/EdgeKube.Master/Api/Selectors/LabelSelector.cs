using System.Text.Json.Nodes;
using k8s.Models;

namespace EdgeKube.Master.Api.Selectors;

/// <summary>
/// A label selector as kube-apiserver evaluates it: the AND of its requirements. Parsed from the
/// <c>labelSelector</c> query parameter (<see cref="Parse"/>) or built from a LabelSelector field of a
/// Deployment, ReplicaSet, Service... (<see cref="FromV1"/>, <see cref="FromJson"/>). Immutable.
/// </summary>
/// <remarks>
/// <see cref="Everything"/> (no requirements) matches every object; <see cref="Nothing"/>, what a missing
/// (null) LabelSelector field means, matches none, as metav1.LabelSelectorAsSelector.
/// </remarks>
public sealed class LabelSelector
{
    private readonly LabelRequirement[] _requirements;
    private readonly bool _nothing;

    private LabelSelector(IEnumerable<LabelRequirement> requirements, bool nothing)
    {
        // Sorted by key as upstream does, so ToString is deterministic.
        _requirements = [.. requirements.OrderBy(r => r.Key, StringComparer.Ordinal)];
        _nothing = nothing;
    }

    /// <summary>Matches every object.</summary>
    public static LabelSelector Everything { get; } = new([], nothing: false);

    /// <summary>Matches no object.</summary>
    public static LabelSelector Nothing { get; } = new([], nothing: true);

    /// <summary>True when the selector selects everything (no requirements).</summary>
    public bool IsEmpty => !_nothing && _requirements.Length == 0;

    /// <summary>The requirements, sorted by key.</summary>
    public IReadOnlyList<LabelRequirement> Requirements => _requirements;

    /// <summary>labels.Parse of the <c>labelSelector</c> query parameter; null or blank selects everything. Throws <see cref="SelectorException"/> with the API server's message.</summary>
    public static LabelSelector Parse(string? text) =>
        string.IsNullOrEmpty(text) ? Everything : new LabelSelector(LabelSelectorParser.Parse(text), nothing: false);

    /// <summary>metav1.LabelSelectorAsSelector: matchLabels and matchExpressions ANDed; null selects nothing, empty everything. Throws <see cref="SelectorException"/>.</summary>
    public static LabelSelector FromV1(V1LabelSelector? selector)
    {
        if (selector is null)
        {
            return Nothing;
        }

        var expressions = selector.MatchExpressions?
            .Select(e => (e.Key ?? "", e.OperatorProperty ?? "", e.Values is null ? null : (IReadOnlyList<string>)[.. e.Values]))
            .ToList();
        return FromParts(selector.MatchLabels?.ToDictionary(), expressions);
    }

    /// <summary><see cref="FromV1"/> for a LabelSelector as it is stored (e.g. a Deployment's spec.selector); a JSON null or a missing node selects nothing.</summary>
    public static LabelSelector FromJson(JsonNode? selector)
    {
        if (selector is not JsonObject obj)
        {
            return Nothing;
        }

        Dictionary<string, string>? matchLabels = null;
        if (obj["matchLabels"] is JsonObject labels)
        {
            matchLabels = labels.ToDictionary(p => p.Key, p => Text(p.Value), StringComparer.Ordinal);
        }

        var expressions = (obj["matchExpressions"] as JsonArray)?
            .OfType<JsonObject>()
            .Select(e => (
                Text(e["key"]),
                Text(e["operator"]),
                e["values"] is JsonArray values ? (IReadOnlyList<string>?)[.. values.Select(Text)] : null))
            .ToList();
        return FromParts(matchLabels, expressions);
    }

    /// <summary>The equality selector of a plain label map (a Service's spec.selector); empty or null selects everything.</summary>
    public static LabelSelector FromSet(IReadOnlyDictionary<string, string>? labels) =>
        labels is null || labels.Count == 0
            ? Everything
            : new LabelSelector(labels.Select(p => LabelRequirement.Create(p.Key, LabelOperator.Equals, [p.Value])), nothing: false);

    /// <summary>Whether every requirement holds for <paramref name="labels"/> (null means no labels).</summary>
    public bool Matches(IReadOnlyDictionary<string, string>? labels)
    {
        if (_nothing)
        {
            return false;
        }

        labels ??= new Dictionary<string, string>();
        foreach (var requirement in _requirements)
        {
            if (!requirement.Matches(labels))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary><see cref="Matches(IReadOnlyDictionary{string, string})"/> on an object's metadata.labels.</summary>
    public bool MatchesLabelsOf(JsonObject obj)
    {
        if (IsEmpty)
        {
            return true;
        }

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj["metadata"]?["labels"] is JsonObject map)
        {
            foreach (var (key, value) in map)
            {
                labels[key] = Text(value);
            }
        }

        return Matches(labels);
    }

    /// <summary>The single value <paramref name="key"/> must have (from =, == or a one-value in), for index lookups.</summary>
    public bool TryGetExactMatch(string key, out string value)
    {
        foreach (var requirement in _requirements)
        {
            if (requirement.Key != key)
            {
                continue;
            }

            if (requirement.Operator is LabelOperator.Equals or LabelOperator.DoubleEquals or LabelOperator.In && requirement.Values.Count == 1)
            {
                value = requirement.Values[0];
                return true;
            }

            break;
        }

        value = "";
        return false;
    }

    /// <summary>The canonical form, as upstream's Selector.String(): "a=b,c in (x,y),!d"; "" for <see cref="Everything"/> and <see cref="Nothing"/>.</summary>
    public override string ToString() => string.Join(',', _requirements.Select(r => r.ToString()));

    private static LabelSelector FromParts(
        IReadOnlyDictionary<string, string>? matchLabels,
        List<(string Key, string Operator, IReadOnlyList<string>? Values)>? matchExpressions)
    {
        if ((matchLabels?.Count ?? 0) + (matchExpressions?.Count ?? 0) == 0)
        {
            return Everything;
        }

        var requirements = new List<LabelRequirement>();
        foreach (var (key, value) in matchLabels?.OrderBy(p => p.Key, StringComparer.Ordinal) ?? Enumerable.Empty<KeyValuePair<string, string>>())
        {
            requirements.Add(LabelRequirement.Create(key, LabelOperator.Equals, [value]));
        }

        foreach (var (key, op, values) in matchExpressions ?? [])
        {
            var labelOperator = op switch
            {
                "In" => LabelOperator.In,
                "NotIn" => LabelOperator.NotIn,
                "Exists" => LabelOperator.Exists,
                "DoesNotExist" => LabelOperator.DoesNotExist,
                _ => throw new SelectorException($"{GoFormat.Quote(op)} is not a valid label selector operator"),
            };

            // Upstream copies with append([]string(nil), ...), so no values is a nil slice.
            requirements.Add(LabelRequirement.Create(key, labelOperator, values is { Count: > 0 } ? values : null));
        }

        return new LabelSelector(requirements, nothing: false);
    }

    private static string Text(JsonNode? node) => node is JsonValue value && value.TryGetValue(out string? text) ? text : "";
}
