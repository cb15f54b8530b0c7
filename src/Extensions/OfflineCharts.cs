using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Html;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;
using Toolkit.Reporting;

namespace Toolkit.Interactive;

/// <summary>
/// Charts that render without internet: plotly.js comes from the toolkit's own package (the copy Plotly.NET ships),
/// sent to the notebook once per session when the extension loads, and every chart is formatted to draw with that copy
/// instead of loading require.js and plotly.js from public CDNs.
/// </summary>
internal static partial class OfflineCharts
{
    /// <summary>
    /// The one-time loader: plotly.js, run with <c>define</c>, <c>module</c> and <c>exports</c> hidden so its UMD
    /// wrapper sets <c>window.Plotly</c> even in front ends that provide RequireJS (classic Jupyter).
    /// </summary>
    public static HtmlString Loader() => new(
        "<script type=\"text/javascript\">if (!window.Plotly) { (function (define, module, exports) {\n"
            + HtmlReport.PlotlyJs() +
        "\n})(undefined, undefined, undefined); }</script><div style=\"display:none\">plotly.js loaded from " +
            "LmToolkit.Interactive</div>");

    /// <summary>Formats every <see cref="GenericChart"/> (the magics' and notebook code's) as HTML that draws with the
    /// loaded copy.</summary>
    public static void Register() =>
        Formatter.Register<GenericChart>((chart, writer) => writer.Write(Html(chart)), HtmlFormatter.MimeType);

    /// <summary>The chart's div and script; drawing waits until plotly.js is present (and says so if it never
    /// comes).</summary>
    public static string Html(GenericChart chart)
    {
        var html = GenericChart.toChartHTML(chart);
        return RenderCall().Replace(html, m =>
            $"(function wait(tries) {{ if (window.Plotly) {{ {m.Groups[1].Value}(); }} else if (tries > 0) {{ " +
                $"setTimeout(function () {{ wait(tries - 1); }}, 50); }} " +
            $"else {{ var d = document.getElementById('{Guid.ParseExact(m.Groups["id"].Value, "N"):D}'); if (d) " +
                $"d.textContent = 'plotly.js is not loaded: run the cell that loads LmToolkit.Interactive.'; }} " +
                    $"}})(200);");
    }

    // The render call at the end of Plotly.NET's script: renderPlotly_<id without dashes>();
    [GeneratedRegex(@"(renderPlotly_(?<id>[0-9a-f]{32}))\(\);")]
    private static partial Regex RenderCall();
}
