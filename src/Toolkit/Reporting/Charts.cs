using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Runs;

namespace Toolkit.Reporting;

/// <summary>Plotly charts of run metrics, shared by the notebook extension and the HTML report.</summary>
public static class Charts
{
    /// <summary>One line per rank of metric <paramref name="name"/> against step.</summary>
    /// <param name="points">The run's metric points.</param>
    /// <param name="name">The metric.</param>
    /// <param name="title">The chart's title (default the metric's name).</param>
    /// <param name="showLegend">False for a panel beside another whose legend already names the same ranks.</param>
    public static GenericChart MetricByRank(IEnumerable<MetricPoint> points, string name, string? title = null,
        bool showLegend = true) =>
        Lines(title ?? name, points.Where(p => p.Name == name).GroupBy(p => p.Rank).OrderBy(g => g.Key)
            .Select(g => ($"rank {g.Key}", (IReadOnlyList<MetricPoint>)g.ToList())), showLegend);

    /// <summary>One line per named series of metric points (value against step).</summary>
    public static GenericChart Lines(string title, IEnumerable<(string Name, IReadOnlyList<MetricPoint> Points)> series,
        bool showLegend = true)
    {
        var lines = series.Select(s => Plotly.NET.CSharp.Chart.Line<int, double, string>(
            x: s.Points.Select(p => p.Step).ToArray(), y: s.Points.Select(p => p.Value).ToArray(), Name: s.Name,
            ShowLegend: showLegend)).ToList();
        if (lines.Count == 0)
            lines.Add(Plotly.NET.CSharp.Chart.Line<int, double, string>(x: [], y: [], Name: "no data yet"));
        return Titled(Plotly.NET.CSharp.Chart.Combine(lines), title)
            .WithXAxisStyle<double, double, string>(TitleText: "step").WithSize(560, 360);
    }

    /// <summary>A bar chart of named values.</summary>
    public static GenericChart Bars(string title, IReadOnlyList<string> labels, IReadOnlyList<double> values,
        string valueTitle)
    {
        var chart = Plotly.NET.CSharp.Chart.Column<double, string, string>(values: values.ToArray(),
            Keys: labels.ToArray())
            .WithYAxisStyle<double, double, string>(TitleText: valueTitle).WithSize(560, 360);
        return Titled(chart, title);
    }

    /// <summary>Stacked columns: one stack per category, one colour per series; an optional dashed limit line (e.g.
    /// device memory).</summary>
    public static GenericChart StackedColumns(string title, IReadOnlyList<string> categories, IEnumerable<(string Name,
        IReadOnlyList<double> Values)> series,
        string valueTitle, (string Name, double Value)? limit = null)
    {
        var charts = series.Select(s => Plotly.NET.CSharp.Chart.StackedColumn<double, string,
            string>(values: s.Values.ToArray(), Keys: categories.ToArray(), Name: s.Name)).ToList();
        if (limit is { } l)
            charts.Add(Plotly.NET.CSharp.Chart.Line<string, double, string>(x: categories.ToArray(),
                y: categories.Select(_ => l.Value).ToArray(), Name: l.Name));
        return Titled(Plotly.NET.CSharp.Chart.Combine(charts).WithYAxisStyle<double, double,
            string>(TitleText: valueTitle).WithSize(640, 380), title);
    }

    /// <summary>Grouped columns: side by side per category, one colour per series.</summary>
    public static GenericChart GroupedColumns(string title, IReadOnlyList<string> categories, IEnumerable<(string Name,
        IReadOnlyList<double> Values)> series, string valueTitle) =>
        Titled(Plotly.NET.CSharp.Chart.Combine(series.Select(s => Plotly.NET.CSharp.Chart.Column<double, string,
            string>(values: s.Values.ToArray(), Keys: categories.ToArray(), Name: s.Name)))
            .WithYAxisStyle<double, double, string>(TitleText: valueTitle).WithSize(640, 380), title);

    /// <summary>Charts side by side in one figure under one title, each panel with its own title.</summary>
    public static GenericChart Side(string title, IReadOnlyList<(GenericChart Chart, string Title)> panels) =>
        Titled(Plotly.NET.CSharp.Chart.Grid([.. panels.Select(p => p.Chart)], 1, panels.Count,
            SubPlotTitles: panels.Select(p => p.Title).ToArray()), title);

    private static GenericChart Titled(GenericChart chart, string title) =>
        Plotly.NET.Chart.withTitle(title, Microsoft.FSharp.Core.FSharpOption<Font>.None).Invoke(chart);
}
