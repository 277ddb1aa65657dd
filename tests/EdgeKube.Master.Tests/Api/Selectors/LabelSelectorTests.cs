using System.Text.Json.Nodes;
using EdgeKube.Master.Api.Selectors;
using k8s.Models;

namespace EdgeKube.Master.Tests.Api.Selectors;

public class LabelSelectorTests
{
    private const string NameRegexError =
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    private const string ValueRegexError =
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    [Theory]
    [InlineData("app=web", "app=web", true)]
    [InlineData("app=web", "app=db", false)]
    [InlineData("app=web", "", false)]
    [InlineData("app==web", "app=web", true)]
    [InlineData("app!=web", "app=db", true)]
    [InlineData("app!=web", "", true)]
    [InlineData("app!=web", "app=web", false)]
    [InlineData("app in (web,db)", "app=db", true)]
    [InlineData("app in (web,db)", "app=cache", false)]
    [InlineData("app in (web,db)", "", false)]
    [InlineData("app notin (web)", "app=db", true)]
    [InlineData("app notin (web)", "", true)]
    [InlineData("app notin (web)", "app=web", false)]
    [InlineData("app", "app=", true)]
    [InlineData("app", "tier=x", false)]
    [InlineData("!app", "tier=x", true)]
    [InlineData("!app", "app=web", false)]
    [InlineData("app=web,tier", "app=web,tier=front", true)]
    [InlineData("app=web,tier", "app=web", false)]
    [InlineData("app=web,!canary", "app=web,canary=true", false)]
    [InlineData("  app  =  web ,\ttier in ( front , edge )  ", "app=web,tier=edge", true)]
    [InlineData("app=", "app=", true)]
    [InlineData("app=", "app=web", false)]
    [InlineData("app in ()", "app=", true)]
    [InlineData("x in (foo,,baz)", "x=", true)]
    [InlineData("x in (foo,,baz)", "x=baz", true)]
    [InlineData("in in (in,notin)", "in=notin", true)]
    [InlineData("example.com/zone=a", "example.com/zone=a", true)]
    [InlineData("replicas>2", "replicas=3", true)]
    [InlineData("replicas>2", "replicas=2", false)]
    [InlineData("replicas>2", "replicas=many", false)]
    [InlineData("replicas<2", "replicas=-1", true)]
    [InlineData("replicas<2", "", false)]
    public void Matches(string selector, string labels, bool expected) =>
        Assert.Equal(expected, LabelSelector.Parse(selector).Matches(Labels(labels)));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void Blank_selects_everything(string? text)
    {
        var selector = LabelSelector.Parse(text);

        Assert.True(selector.IsEmpty);
        Assert.True(selector.Matches(null));
        Assert.True(selector.Matches(Labels("a=b")));
    }

    [Fact]
    public void Canonical_string_sorts_requirements_and_values()
    {
        var selector = LabelSelector.Parse("tier notin (b, a),!canary,app==web,x>1");

        Assert.Equal("app==web,!canary,tier notin (a,b),x>1", selector.ToString());
        Assert.False(selector.IsEmpty);
    }

    [Fact]
    public void Exact_match_for_index_lookups()
    {
        var selector = LabelSelector.Parse("app in (web),tier=front,zone in (a,b)");

        Assert.True(selector.TryGetExactMatch("app", out var app));
        Assert.Equal("web", app);
        Assert.True(selector.TryGetExactMatch("tier", out var tier));
        Assert.Equal("front", tier);
        Assert.False(selector.TryGetExactMatch("zone", out _));
        Assert.False(selector.TryGetExactMatch("missing", out _));
    }

    [Fact]
    public void Matches_the_labels_of_an_object()
    {
        var pod = JsonNode.Parse("""{"metadata": {"name": "p", "labels": {"app": "web"}}}""")!.AsObject();

        Assert.True(LabelSelector.Parse("app=web").MatchesLabelsOf(pod));
        Assert.False(LabelSelector.Parse("app=db").MatchesLabelsOf(pod));
        Assert.True(LabelSelector.Parse("!tier").MatchesLabelsOf(JsonNode.Parse("""{"metadata": {}}""")!.AsObject()));
    }

    // Messages as kube-apiserver returns them in the 400 Status for ?labelSelector=...
    [Theory]
    [InlineData("app=(", "unable to parse requirement: found '(', expected: identifier")]
    [InlineData("app in web", "unable to parse requirement: found 'web' expected: '('")]
    [InlineData("app in (web", "unable to parse requirement: found '', expected: ',' or ')'")]
    [InlineData("app in (web db)", "unable to parse requirement: found 'db', expected: ',' or ')'")]
    [InlineData("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt")]
    [InlineData("app=web,", "found '', expected: identifier after ','")]
    [InlineData(",app", "found ',', expected: !, identifier, or 'end of string'")]
    [InlineData("app=web tier", "found 'tier', expected: ',' or 'end of string'")]
    [InlineData("!app=web", "found '=', expected: ',' or 'end of string'")]
    [InlineData("!=web", "found '!=', expected: !, identifier, or 'end of string'")]
    [InlineData("app in (web,(", "unable to parse requirement: found '(', expected: ',', or identifier")]
    [InlineData("app in =", "unable to parse requirement: found '=' expected: '('")]
    [InlineData("app in ()x", "found 'x', expected: ',' or 'end of string'")]
    public void Syntax_errors(string selector, string message) =>
        Assert.Equal(message, Assert.Throws<SelectorException>(() => LabelSelector.Parse(selector)).Message);

    [Fact]
    public void Invalid_key()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("b@d=web"));

        Assert.Equal("unable to parse requirement: <nil>: Invalid value: \"b@d\": name part " + NameRegexError, e.Message);
    }

    [Fact]
    public void Key_with_an_empty_name_part()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("example.com/=x"));

        Assert.Equal(
            "unable to parse requirement: <nil>: Invalid value: \"example.com/\": name part must be non-empty; name part " + NameRegexError,
            e.Message);
    }

    [Fact]
    public void Key_with_a_bad_prefix()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("Example.com/zone"));

        Assert.Equal(
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/zone\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            e.Message);
    }

    [Fact]
    public void Invalid_value()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("app=b@d"));

        Assert.Equal("unable to parse requirement: values[0][app]: Invalid value: \"b@d\": " + ValueRegexError, e.Message);
    }

    [Fact]
    public void Several_invalid_values_are_aggregated_in_sorted_order()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("app in (z@, -a)"));

        Assert.Equal(
            "unable to parse requirement: [values[0][app]: Invalid value: \"-a\": " + ValueRegexError
            + ", values[1][app]: Invalid value: \"z@\": " + ValueRegexError + "]",
            e.Message);
    }

    [Fact]
    public void Too_long_value()
    {
        var value = new string('v', 64);
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("app=" + value));

        Assert.Equal($"unable to parse requirement: values[0][app]: Invalid value: \"{value}\": must be no more than 63 characters", e.Message);
    }

    [Fact]
    public void Non_integer_for_greater_than()
    {
        var e = Assert.Throws<SelectorException>(() => LabelSelector.Parse("replicas>many"));

        Assert.Equal("unable to parse requirement: values[0]: Invalid value: \"many\": for 'Gt', 'Lt' operators, the value must be an integer", e.Message);
    }

    [Fact]
    public void From_v1_ands_match_labels_and_expressions()
    {
        var selector = LabelSelector.FromV1(new V1LabelSelector
        {
            MatchLabels = new Dictionary<string, string> { ["app"] = "web" },
            MatchExpressions =
            [
                new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = "In", Values = ["front", "edge"] },
                new V1LabelSelectorRequirement { Key = "zone", OperatorProperty = "NotIn", Values = ["cellar"] },
                new V1LabelSelectorRequirement { Key = "gpio", OperatorProperty = "Exists" },
                new V1LabelSelectorRequirement { Key = "canary", OperatorProperty = "DoesNotExist" },
            ],
        });

        Assert.True(selector.Matches(Labels("app=web,tier=edge,gpio=")));
        Assert.False(selector.Matches(Labels("app=web,tier=edge")));
        Assert.False(selector.Matches(Labels("app=web,tier=edge,gpio=,canary=1")));
        Assert.False(selector.Matches(Labels("app=web,tier=edge,gpio=,zone=cellar")));
        Assert.Equal("app=web,!canary,gpio,tier in (edge,front),zone notin (cellar)", selector.ToString());
    }

    [Fact]
    public void From_v1_null_selects_nothing_and_empty_everything()
    {
        Assert.False(LabelSelector.FromV1(null).Matches(Labels("app=web")));
        Assert.False(LabelSelector.FromV1(null).IsEmpty);
        Assert.True(LabelSelector.FromV1(new V1LabelSelector()).Matches(Labels("app=web")));
        Assert.True(LabelSelector.FromV1(new V1LabelSelector()).IsEmpty);
    }

    [Fact]
    public void From_v1_errors()
    {
        Assert.Equal(
            "\"Near\" is not a valid label selector operator",
            Assert.Throws<SelectorException>(() => LabelSelector.FromV1(Expression("a", "Near"))).Message);
        Assert.Equal(
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
            Assert.Throws<SelectorException>(() => LabelSelector.FromV1(Expression("a", "In"))).Message);
        Assert.Equal(
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist",
            Assert.Throws<SelectorException>(() => LabelSelector.FromV1(Expression("a", "Exists", "x", "y"))).Message);
        Assert.Equal(
            "key: Invalid value: \"a b\": name part " + NameRegexError,
            Assert.Throws<SelectorException>(() => LabelSelector.FromV1(Expression("a b", "Exists"))).Message);
    }

    [Fact]
    public void From_json_reads_a_stored_selector()
    {
        var selector = LabelSelector.FromJson(JsonNode.Parse("""{"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}"""));

        Assert.Equal("app=web,tier in (edge)", selector.ToString());
        Assert.False(LabelSelector.FromJson(null).Matches(Labels("")));
        Assert.True(LabelSelector.FromJson(JsonNode.Parse("{}")).IsEmpty);
    }

    [Fact]
    public void From_set_is_an_equality_selector()
    {
        var selector = LabelSelector.FromSet(new Dictionary<string, string> { ["b"] = "2", ["a"] = "1" });

        Assert.Equal("a=1,b=2", selector.ToString());
        Assert.True(LabelSelector.FromSet(null).IsEmpty);
    }

    private static V1LabelSelector Expression(string key, string op, params string[] values) => new()
    {
        MatchExpressions = [new V1LabelSelectorRequirement { Key = key, OperatorProperty = op, Values = values.Length > 0 ? values : null }],
    };

    private static Dictionary<string, string> Labels(string text) =>
        text.Length == 0
            ? []
            : text.Split(',').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
}
