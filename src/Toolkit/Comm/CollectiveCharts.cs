using Plotly.NET;
using Plotly.NET.CSharp;

namespace Toolkit.Comm;

/// <summary>Charts of collective timings, predicted or measured.</summary>
public static class CollectiveCharts
{
    /// <summary>Bus bandwidth (GB/s) against message size, one line per algorithm.</summary>
    public static GenericChart BandwidthBySize(string title, IEnumerable<(string Algorithm, double Bytes,
        double BusBandwidth)> points) =>
        Lines(title, points.GroupBy(p => p.Algorithm).Select(g => (g.Key, g.Select(p => (p.Bytes / (1 << 20),
            p.BusBandwidth / 1e9)).ToList())), "message size (MiB)", "bus bandwidth (GB/s)", logX: true);

    /// <summary>Bus bandwidth against GPU count, one line per algorithm.</summary>
    public static GenericChart BandwidthByRanks(string title, IEnumerable<SimulatedPoint> points) =>
        Lines(title, points.GroupBy(p => p.Algorithm).Select(g => (g.Key,
            g.Select(p => ((double)p.Nodes * p.RanksPerNode, p.BusBandwidth / 1e9)).ToList())), "GPUs",
                "bus bandwidth (GB/s)", logX: false);

    private static GenericChart Lines(string title, IEnumerable<(string Name, List<(double X,
        double Y)> Points)> series, string xTitle, string yTitle, bool logX)
    {
        var chart = Plotly.NET.CSharp.Chart.Combine(series.Select(s => Plotly.NET.CSharp.Chart.Line<double, double,
            string>(
            x: s.Points.Select(p => p.X).ToArray(), y: s.Points.Select(p => p.Y).ToArray(), Name: s.Name,
                ShowMarkers: true)))
            .WithXAxisStyle<double, double, string>(TitleText: xTitle,
                AxisType: logX ? StyleParam.AxisType.Log : StyleParam.AxisType.Linear)
            .WithYAxisStyle<double, double, string>(TitleText: yTitle)
            .WithSize(620, 380);
        return Plotly.NET.Chart.withTitle(title, Microsoft.FSharp.Core.FSharpOption<Font>.None).Invoke(chart);
    }
}
