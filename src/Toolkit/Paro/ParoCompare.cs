using Toolkit.Runs;

namespace Toolkit.Paro;

/// <summary>Trains the same job under several strategies, one after another, for side-by-side measurements.</summary>
public static class ParoCompare
{
    /// <summary>Runs <paramref name="options"/> once per strategy (its own <c>Strategy</c> is replaced); progress carries the strategy being trained.</summary>
    public static async Task<IReadOnlyList<ParoTrainResult>> RunAsync(ParoTrainOptions options, IEnumerable<string> strategies,
        IProgress<(string Strategy, MetricPoint Point)>? progress = null, CancellationToken cancellationToken = default)
    {
        var codes = strategies.Select(s => ShardingStrategy.Parse(s).Code).ToList();   // every code is checked before the first run starts
        if (codes.Count == 0) throw new ArgumentException("Give at least one strategy.", nameof(strategies));
        foreach (var code in codes) (options with { Strategy = code }).Validate();
        var results = new List<ParoTrainResult>();
        foreach (var code in codes)
        {
            var forward = progress is null ? null : new Forward(code, progress);
            results.Add(await ParoTrainJob.RunAsync(options with { Strategy = code }, forward, cancellationToken));
        }
        return results;
    }

    private sealed class Forward(string strategy, IProgress<(string, MetricPoint)> target) : IProgress<MetricPoint>
    {
        public void Report(MetricPoint value) => target.Report((strategy, value));
    }
}
