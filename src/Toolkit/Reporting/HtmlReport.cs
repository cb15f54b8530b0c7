using System.Net;
using System.Text;
using Plotly.NET;

namespace Toolkit.Reporting;

/// <summary>
/// A self-contained HTML page of charts that opens with no internet access: plotly.js is embedded from the copy
/// Plotly.NET ships as a resource, not fetched from a CDN.
/// </summary>
internal static class HtmlReport
{
    private const string PlotlyResource = "Plotly.NET.plotly-2.28.0.min.js";

    /// <summary>Writes <paramref name="charts"/> under a title and a table of facts to
    /// <paramref name="path"/>.</summary>
    public static void Write(string path, string title, IEnumerable<(string Name, string Value)> facts,
        IEnumerable<GenericChart> charts)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(WebUtility.HtmlEncode(
            title)).Append("</title>");
        html.Append(
            "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}td{padding:2px " +
                "12px;border-bottom:1px solid #ddd}.charts{display:flex;flex-wrap:wrap;gap:12px}</style>");
        html.Append("<script type=\"text/javascript\">").Append(PlotlyJs()).Append("</script></head><body>");
        html.Append("<h1>").Append(WebUtility.HtmlEncode(title)).Append("</h1><table>");
        foreach (var (name, value) in facts)
            html.Append("<tr><td>").Append(WebUtility.HtmlEncode(name)).Append("</td><td>").Append(
                WebUtility.HtmlEncode(value)).Append("</td></tr>");
        html.Append("</table><div class=\"charts\">");
        foreach (var chart in charts) html.Append(GenericChart.toChartHTML(chart));
        html.Append("</div></body></html>");
        File.WriteAllText(path, html.ToString());
    }

    /// <summary>plotly.js as Plotly.NET ships it, safe to inline in a script element.</summary>
    internal static string PlotlyJs()
    {
        using var stream = typeof(GenericChart).Assembly.GetManifestResourceStream(PlotlyResource)
            ?? throw new InvalidOperationException(
                $"Plotly.NET no longer ships {PlotlyResource}; update {nameof(HtmlReport)} to the bundled plotly.js " +
                    $"name.");
        using var reader = new StreamReader(stream);
        // A literal "</script>" inside the library would end the inline script early.
        return reader.ReadToEnd().Replace("</script>", "<\\/script>", StringComparison.OrdinalIgnoreCase);
    }
}
