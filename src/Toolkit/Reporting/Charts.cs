using Plotly.NET;
using Plotly.NET.CSharp;
using Toolkit.Runs;

namespace Toolkit.Reporting;

/// <summary>One line of a panel: its name (the legend entry) and its points.</summary>
/// <param name="Name">The legend entry (none when empty); the same name in several panels of a figure is one legend
/// entry and one colour.</param>
/// <param name="X">X values.</param>
/// <param name="Y">Y values, one per X.</param>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>One panel of a figure: a title in words, axis titles with units, its lines.</summary>
/// <param name="Title">What the panel shows, in words (units go on the axes).</param>
/// <param name="XTitle">The x axis: what and in which unit ("step", "seconds since start").</param>
/// <param name="YTitle">The y axis: what and in which unit ("bytes", "tokens/s").</param>
/// <param name="Lines">The lines.</param>
/// <param name="LogY">A logarithmic y axis (for values that span decades; zeros are not drawn on it).</param>
public sealed record Panel(string Title, string XTitle, string YTitle, IReadOnlyList<Series> Lines,
    bool LogY = false);

/// <summary>
/// Plotly charts shared by the notebook extension, live displays and the HTML reports. Every figure has one title that
/// says what it shows, panels titled in words with units on their axes, and one legend entry per series (a series that
/// appears in several panels keeps one colour and one legend entry).
/// </summary>
public static class Charts
{
    private static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    // Stacked parts of a whole (memory by component) in lighter colours, apart from the lines beside them.
    private static readonly string[] Parts = ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"];

    /// <summary>A figure of <paramref name="panels"/> in a grid of <paramref name="columns"/> columns under one
    /// title.</summary>
    public static GenericChart Figure(string title, IReadOnlyList<Panel> panels, int columns = 2)
    {
        if (panels.Count == 0) panels = [new Panel(title, "", "", [])];
        return Grid(title, Draw(panels), [.. panels.Select(p => p.Title)], columns);
    }

    /// <summary>The panels as charts that share colours and legend entries by series name.</summary>
    internal static IReadOnlyList<GenericChart> Draw(IReadOnlyList<Panel> panels)
    {
        var colours = new Dictionary<string, string>();
        var legend = new HashSet<string>();
        return [.. panels.Select(p => PanelChart(p, colours, legend))];
    }

    /// <summary>Charts in a grid under one title, each with its panel title.</summary>
    internal static GenericChart Grid(string title, IReadOnlyList<GenericChart> charts, IReadOnlyList<string> titles,
        int columns)
    {
        if (charts.Count == 1) return Titled(charts[0].WithSize(620, 400), title);
        columns = Math.Clamp(columns, 1, charts.Count);
        var rows = (charts.Count + columns - 1) / columns;
        var grid = Plotly.NET.CSharp.Chart.Grid(charts, rows, columns, SubPlotTitles: titles.ToArray(), YGap: 0.35,
            XGap: 0.2);
        return Titled(grid.WithSize(Math.Max(620, 430 * columns), 110 + 330 * rows), title);
    }

    /// <summary>One line per rank of metric <paramref name="name"/> against step.</summary>
    /// <param name="points">The run's metric points.</param>
    /// <param name="name">The metric.</param>
    /// <param name="title">The figure's title (default: the metric in words, <see cref="MetricLabels"/>).</param>
    public static GenericChart MetricByRank(IEnumerable<MetricPoint> points, string name, string? title = null)
    {
        var panel = MetricPanel(ByRank(points, name), name);
        return Figure(title ?? panel.Title, [panel]);
    }

    /// <summary>The points of metric <paramref name="name"/>, one series per rank ("rank 0", "rank 1",
    /// ...).</summary>
    public static IEnumerable<(string Name, IReadOnlyList<MetricPoint> Points)> ByRank(IEnumerable<MetricPoint> points,
        string name) =>
        points.Where(p => p.Name == name).GroupBy(p => p.Rank).OrderBy(g => g.Key)
            .Select(g => ($"rank {g.Key}", (IReadOnlyList<MetricPoint>)[.. g]));

    /// <summary>A panel of metric <paramref name="name"/> against step, one line per named series, titled in words
    /// with its unit and axis scale from <see cref="MetricLabels"/>.</summary>
    public static Panel MetricPanel(IEnumerable<(string Name, IReadOnlyList<MetricPoint> Points)> series, string name)
    {
        var label = MetricLabels.Of(name);
        return new Panel(label.Title, "step", label.Unit, [.. series.Select(s => BySteps(s.Name, s.Points))],
            label.LogY);
    }

    /// <summary>One line per named series of metric points (value against step) in one figure.</summary>
    /// <param name="title">The figure's title.</param>
    /// <param name="series">The lines.</param>
    /// <param name="yTitle">The y axis with its unit.</param>
    /// <param name="logY">A logarithmic y axis.</param>
    public static GenericChart Lines(string title, IEnumerable<(string Name, IReadOnlyList<MetricPoint> Points)> series,
        string yTitle = "", bool logY = false) =>
        Figure(title, [new Panel(title, "step", yTitle, [.. series.Select(s => BySteps(s.Name, s.Points))], logY)]);

    private static Series BySteps(string name, IReadOnlyList<MetricPoint> points) =>
        new(name, [.. points.Select(p => (double)p.Step)], [.. points.Select(p => p.Value)]);

    /// <summary>A bar chart of named values.</summary>
    public static GenericChart Bars(string title, IReadOnlyList<string> labels, IReadOnlyList<double> values,
        string valueTitle)
    {
        var chart = Plotly.NET.CSharp.Chart.Column<double, string, string>(values: values.ToArray(),
            Keys: labels.ToArray(), ShowLegend: false, MarkerColor: Color.fromString(Palette[0]))
            .WithYAxisStyle<double, double, string>(TitleText: valueTitle).WithSize(620, 400);
        return Titled(chart, title);
    }

    /// <summary>Stacked columns: one stack per category, one colour per series; an optional dashed limit line (e.g.
    /// device memory).</summary>
    public static GenericChart StackedColumns(string title, IReadOnlyList<string> categories, IEnumerable<(string Name,
        IReadOnlyList<double> Values)> series, string valueTitle, (string Name, double Value)? limit = null)
    {
        var charts = series.Select((s, i) => Plotly.NET.CSharp.Chart.StackedColumn<double, string, string>(
            values: s.Values.ToArray(), Keys: categories.ToArray(), Name: s.Name,
            MarkerColor: Color.fromString(Parts[i % Parts.Length]))).ToList();
        if (limit is { } l)
            charts.Add(Plotly.NET.CSharp.Chart.Line<string, double, string>(x: categories.ToArray(),
                y: categories.Select(_ => l.Value).ToArray(), Name: l.Name, LineColor: Color.fromString("#444"),
                LineDash: StyleParam.DrawingStyle.Dash));
        return Titled(Plotly.NET.CSharp.Chart.Combine(charts).WithYAxisStyle<double, double,
            string>(TitleText: valueTitle).WithSize(680, 420), title);
    }

    /// <summary>Grouped columns: side by side per category, one colour per series.</summary>
    public static GenericChart GroupedColumns(string title, IReadOnlyList<string> categories, IEnumerable<(string Name,
        IReadOnlyList<double> Values)> series, string valueTitle, bool logY = false) =>
        Titled(Plotly.NET.CSharp.Chart.Combine(series.Select((s, i) => Plotly.NET.CSharp.Chart.Column<double, string,
            string>(values: s.Values.ToArray(), Keys: categories.ToArray(), Name: s.Name,
                MarkerColor: Color.fromString(Palette[i % Palette.Length]))))
            .WithYAxisStyle<double, double, string>(TitleText: valueTitle,
                AxisType: logY ? StyleParam.AxisType.Log : StyleParam.AxisType.Linear).WithSize(680, 420), title);

    private static GenericChart PanelChart(Panel panel, Dictionary<string, string> colours, HashSet<string> legend)
    {
        var traces = new List<GenericChart>();
        foreach (var s in panel.Lines.Where(s => s.X.Count > 0))
        {
            if (!colours.TryGetValue(s.Name, out var colour))
                colours[s.Name] = colour = Palette[colours.Count % Palette.Length];
            var color = Color.fromString(colour);
            traces.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: s.X, y: s.Y, Name: s.Name,
                    ShowMarkers: s.X.Count <= 40, ShowLegend: s.Name.Length > 0 && legend.Add(s.Name), LineColor: color,
                    MarkerColor: color)
                .WithTraceInfo(LegendGroup: s.Name));
        }
        if (traces.Count == 0)
            traces.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: [], y: [], Name: "no data yet",
                ShowLegend: false));
        var logY = panel.LogY && panel.Lines.Any(s => s.Y.Any(v => v > 0));
        return Plotly.NET.CSharp.Chart.Combine(traces)
            .WithXAxisStyle<double, double, string>(TitleText: panel.XTitle)
            .WithYAxisStyle<double, double, string>(TitleText: panel.YTitle,
                AxisType: logY ? StyleParam.AxisType.Log : StyleParam.AxisType.Linear);
    }

    private static GenericChart Titled(GenericChart chart, string title) =>
        Plotly.NET.Chart.withTitle(title, Microsoft.FSharp.Core.FSharpOption<Font>.None).Invoke(chart);
}
