using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Runs;

namespace Toolkit.Reporting;

/// <summary>Plotly charts of run metrics, shared by the notebook extension and the HTML report.</summary>
public static class Charts
{
    /// <summary>One line per rank of metric <paramref name="name"/> against step.</summary>
    public static GenericChart MetricByRank(IEnumerable<MetricPoint> points, string name, string? title = null)
    {
        var lines = points.Where(p => p.Name == name).GroupBy(p => p.Rank).OrderBy(g => g.Key)
            .Select(g => Plotly.NET.CSharp.Chart.Line<int, double, string>(
                x: g.Select(p => p.Step).ToArray(), y: g.Select(p => p.Value).ToArray(), Name: $"rank {g.Key}"))
            .ToList();
        if (lines.Count == 0)
            lines.Add(Plotly.NET.CSharp.Chart.Line<int, double, string>(x: [], y: [], Name: "no data yet"));
        return Titled(Plotly.NET.CSharp.Chart.Combine(lines), title ?? name)
            .WithXAxisStyle<double, double, string>(TitleText: "step").WithSize(560, 360);
    }

    /// <summary>A bar chart of named values.</summary>
    public static GenericChart Bars(string title, IReadOnlyList<string> labels, IReadOnlyList<double> values, string valueTitle)
    {
        var chart = Plotly.NET.CSharp.Chart.Column<double, string, string>(values: values.ToArray(), Keys: labels.ToArray())
            .WithYAxisStyle<double, double, string>(TitleText: valueTitle).WithSize(560, 360);
        return Titled(chart, title);
    }

    private static GenericChart Titled(GenericChart chart, string title) =>
        Plotly.NET.Chart.withTitle(title, Microsoft.FSharp.Core.FSharpOption<Font>.None).Invoke(chart);
}
