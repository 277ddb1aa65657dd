using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeKube.Bench.Infra;

/// <summary>Median, min and max of repeated measurements.</summary>
public sealed record Summary(double Median, double Min, double Max, int Runs)
{
    public static Summary Of(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0)
        {
            return new Summary(double.NaN, double.NaN, double.NaN, 0);
        }

        var median = v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
        return new Summary(median, v[0], v[^1], v.Length);
    }

    /// <summary>"median (min–max)" with <paramref name="format"/>.</summary>
    public string Show(string format = "0.00") =>
        Runs == 0 ? "n/a"
        : Runs == 1 || Min == Max ? Median.ToString(format, CultureInfo.InvariantCulture)
        : $"{Median.ToString(format, CultureInfo.InvariantCulture)} ({Min.ToString(format, CultureInfo.InvariantCulture)}–{Max.ToString(format, CultureInfo.InvariantCulture)})";

    public JsonObject Json() => new() { ["median"] = Num(Median), ["min"] = Num(Min), ["max"] = Num(Max), ["runs"] = Runs };

    private static JsonNode? Num(double d) => double.IsFinite(d) ? JsonValue.Create(Math.Round(d, 6)) : null;

    /// <summary>Percentile by nearest rank.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p / 100.0 * v.Length);
        return v[Math.Clamp(rank - 1, 0, v.Length - 1)];
    }
}

/// <summary>One scenario's results: a markdown table with notes, and the same figures as JSON.</summary>
public sealed class Report(string scenario, string title, params string[] columns)
{
    private readonly List<string[]> _rows = [];
    private readonly List<string> _notes = [];

    public string Scenario { get; } = scenario;

    public JsonObject Data { get; } = [];

    public void Row(params string[] cells) => _rows.Add(cells);

    public void Note(string note) => _notes.Add(note);

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"### {title}");
        sb.AppendLine();
        sb.AppendLine("| " + string.Join(" | ", columns) + " |");
        sb.AppendLine("|" + string.Concat(columns.Select(_ => "---|")));
        foreach (var r in _rows)
        {
            sb.AppendLine("| " + string.Join(" | ", r) + " |");
        }

        sb.AppendLine();
        foreach (var n in _notes)
        {
            sb.AppendLine("* " + n);
        }

        return sb.ToString();
    }

    public void Write(string directory, string machine)
    {
        Directory.CreateDirectory(directory);
        var md = Markdown() + $"\n_{machine}; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC_\n";
        File.WriteAllText(Path.Combine(directory, Scenario + ".md"), md);
        var json = new JsonObject
        {
            ["scenario"] = Scenario,
            ["title"] = title,
            ["machine"] = machine,
            ["date"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            ["results"] = Data.DeepClone(),
            ["notes"] = new JsonArray([.. _notes.Select(n => JsonValue.Create(n))]),
        };
        File.WriteAllText(Path.Combine(directory, Scenario + ".json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(md);
    }

    public static string Verdict(bool ok) => ok ? "met" : "**missed**";

    public static string Mb(double bytes) => (bytes / 1048576).ToString("0.0", CultureInfo.InvariantCulture);
}
