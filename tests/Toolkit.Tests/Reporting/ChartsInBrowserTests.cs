using Toolkit.Quickstart;
using Toolkit.Reporting;
using Toolkit.Rl;
using Toolkit.Runs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Reporting;

/// <summary>
/// Charts as a reader sees them: pages opened in headless Chromium with no network, what Plotly drew read back, and a
/// screenshot kept under <c>artifacts/test-output/browser</c>.
/// </summary>
public sealed class ChartsInBrowserTests : IDisposable
{
    private static readonly string Output = Path.Combine(Repository.Root, "artifacts", "test-output", "browser");
    private readonly TemporaryFolder _work = new("toolkit-browser-");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task QuickstartReport_DrawsEveryChart_TitledInWords()
    {
        var result = await QuickstartJob.RunAsync(new QuickstartOptions { Steps = 4, Launch = new() { Ranks = 2,
            GroupSize = 1, RunsDirectory = _work.Path } });
        var page = HeadlessBrowser.Open(result.ReportPath, Path.Combine(Output, "quickstart-report.png"));
        page.AssertReadable("quickstart report");
        Assert.Contains(page.Charts, c => c.Title == "bytes sent across groups per step");
        Assert.All(page.Charts, c => Assert.Equal(["rank 0", "rank 1"], c.Legend));
    }

    [Fact]
    public void Figure_SeriesInSeveralPanels_OneLegendEntryEach_LogAxisWhereAsked()
    {
        static Series Line(string name, double scale) => new(name, [1, 2, 3], [scale, scale * 10, scale * 100]);
        var figure = Charts.Figure("Two corrections against three diagnostics",
        [
            new Panel("held-out accuracy", "step", "fraction correct", [Line("none", 0.001), Line("icepop", 0.002)]),
            new Panel("KL(engine ‖ trainer) per token", "step", "nats", [Line("none", 1e-5), Line("icepop", 1e-6)],
                LogY: true),
            new Panel("empty so far", "step", "", []),
        ], columns: 3);
        var page = Open(figure, "figure-legend-groups");
        var chart = Assert.Single(page.Charts);
        Assert.Equal("Two corrections against three diagnostics", chart.Title);
        Assert.Equal(["held-out accuracy", "KL(engine ‖ trainer) per token", "empty so far"], chart.Panels);
        Assert.Equal(["none", "icepop"], chart.Legend);
        Assert.Equal(4, chart.TracesWithData);
    }

    [Fact]
    public void RlLiveFigure_DenseRuns_NoRoutingPanel_TitleNamesTheRuns()
    {
        var points = new List<(string, MetricPoint)>();
        foreach (var run in new[] { "none", "tis", "icepop" })
            for (var step = 1; step <= 3; step++)
                foreach (var metric in RlCharts.Metrics.Where(m => m != RlTrainJob.Metrics.RoutingFlips))
                    points.Add((run, new MetricPoint(DateTimeOffset.UnixEpoch, step, 0, metric, step * 1e-3)));
        var page = Open(RlCharts.Live(points), "rl-live");
        var chart = Assert.Single(page.Charts);
        Assert.Equal("RL training, one line per run: none, tis, icepop", chart.Title);
        Assert.Equal(RlCharts.Metrics.Count - 1, chart.Panels.Count);
        Assert.DoesNotContain(chart.Panels, p => p.Contains("routed", StringComparison.Ordinal));
        Assert.Equal(["none", "tis", "icepop"], chart.Legend);
    }

    private BrowserPage Open(Plotly.NET.GenericChart chart, string name)
    {
        var page = Path.Combine(_work.Path, name + ".html");
        HtmlReport.Write(page, name, [], [chart]);
        var result = HeadlessBrowser.Open(page, Path.Combine(Output, name + ".png"));
        result.AssertReadable(name);
        return result;
    }
}
