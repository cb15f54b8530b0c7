using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Toolkit.Tests.Support;

/// <summary>What a page showed in the browser: each chart's title, panel titles and how many of its traces hold
/// data.</summary>
/// <param name="Expected">Charts the page's HTML asks Plotly to draw.</param>
/// <param name="Charts">Charts Plotly drew.</param>
/// <param name="Height">The page's height in CSS pixels.</param>
internal sealed record BrowserPage(int Expected, IReadOnlyList<DrawnChart> Charts, int Height)
{
    /// <summary>Every chart the page asked for drew with data; no title is a metric's internal name; no legend names
    /// a series twice.</summary>
    public void AssertReadable(string page)
    {
        Assert.True(Expected > 0, $"{page} has no chart");
        Assert.True(Expected == Charts.Count, $"{page}: {Charts.Count} of {Expected} charts drew");
        foreach (var chart in Charts)
        {
            Assert.True(chart.TracesWithData > 0, $"{page}: chart '{chart.Title}' drew no data");
            foreach (var title in chart.Panels.Prepend(chart.Title))
                Assert.False(Toolkit.Reporting.MetricLabels.IsInternalName(title),
                    $"{page}: '{title}' is a metric's internal name");
            Assert.True(chart.Legend.Distinct().Count() == chart.Legend.Count,
                $"{page}: chart '{chart.Title}' names a series twice in its legend: {string.Join(", ", chart.Legend)}");
        }
    }
}

/// <summary>A chart as drawn: its figure title, panel titles, traces and traces with at least one point.</summary>
internal sealed record DrawnChart(string Id, string Title, IReadOnlyList<string> Panels, int Traces, int TracesWithData,
    IReadOnlyList<string> Legend);

/// <summary>
/// Opens an HTML page in Debian's headless Chromium with no network (every host name unresolvable, a proxy that does
/// not exist), waits for its Plotly charts, reads back what they drew and saves a screenshot of the page.
/// </summary>
internal static partial class HeadlessBrowser
{
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>True when Chromium is installed (<c>.ci/run</c> installs it).</summary>
    public static bool Available => File.Exists(Chromium);

    /// <summary>Opens <paramref name="page"/>; writes the screenshot to <paramref name="screenshot"/>.</summary>
    public static BrowserPage Open(string page, string screenshot)
    {
        Assert.True(Available, $"{Chromium} is missing: apt-get install chromium (.ci/run installs it).");
        var html = File.ReadAllText(page);
        var expected = RenderCall().Matches(html).Select(m => m.Groups[1].Value).Distinct().Count();
        var probe = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(page))!,
            $".probe-{Guid.NewGuid():N}.html");
        File.WriteAllText(probe, html + Probe.Replace("EXPECTED", expected.ToString()));
        var profile = Directory.CreateTempSubdirectory("toolkit-chromium-");
        try
        {
            var dom = Run(profile.FullName, "--dump-dom", probe);
            var report = ReportText().Match(dom);
            Assert.True(report.Success, $"the page's probe did not report; Chromium printed:\n{Tail(dom)}");
            var result = JsonSerializer.Deserialize<ProbeResult>(System.Net.WebUtility.HtmlDecode(
                report.Groups[1].Value), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
            var height = Math.Clamp(result.Height, 600, 16000);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(screenshot))!);
            Run(profile.FullName, $"--screenshot={screenshot}", probe, $"--window-size=1400,{height}");
            Assert.True(File.Exists(screenshot), $"Chromium wrote no screenshot of {page}");
            return new BrowserPage(expected, result.Charts, result.Height);
        }
        finally
        {
            File.Delete(probe);
            profile.Delete(recursive: true);
        }
    }

    private static string Run(string profile, string action, string page, string? size = null)
    {
        var start = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            $"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=socks5://127.0.0.1:9", "--virtual-time-budget=30000", size ?? "--window-size=1400,900",
            action, new Uri(page).AbsoluteUri })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "Chromium did not finish in 2 minutes");
        Assert.True(process.ExitCode == 0, $"Chromium exited {process.ExitCode}:\n{Tail(stderr.Result)}");
        return stdout;
    }

    private static string Tail(string text) => text.Length <= 2000 ? text : text[^2000..];

    // Waits until every Plotly div has drawn (or 20 s of virtual time), then writes what each one drew.
    private const string Probe = """
        <script>
        (function probe(tries) {
          var divs = Array.prototype.slice.call(document.querySelectorAll('div.js-plotly-plot'));
          var drawn = divs.filter(function (d) { return d._fullLayout; }).length;
          if (drawn < EXPECTED && tries > 0) { setTimeout(function () { probe(tries - 1); }, 50); return; }
          var charts = divs.map(function (d) {
            var layout = d._fullLayout || {};
            var title = (layout.title && layout.title.text) || '';
            var panels = (layout.annotations || []).map(function (a) { return a.text || ''; });
            var data = d.data || [];
            var withData = data.filter(function (t) {
              var v = t.y || t.x || t.values || [];
              return v.length > 0;
            }).length;
            var legend = data.filter(function (t) { return t.showlegend !== false && t.name; })
              .map(function (t) { return t.name; });
            return { id: d.id, title: title, panels: panels, traces: data.length, tracesWithData: withData,
                     legend: legend };
          });
          var pre = document.createElement('pre');
          pre.id = 'toolkit-browser-probe';
          pre.textContent = JSON.stringify({ charts: charts, height: document.body.scrollHeight });
          document.body.appendChild(pre);
        })(400);
        </script>
        """;

    [GeneratedRegex(@"renderPlotly_([0-9a-f]{32})\(\)")]
    private static partial Regex RenderCall();

    [GeneratedRegex("<pre id=\"toolkit-browser-probe\">(.*?)</pre>", RegexOptions.Singleline)]
    private static partial Regex ReportText();

    private sealed record ProbeResult(List<DrawnChart> Charts, int Height);
}
