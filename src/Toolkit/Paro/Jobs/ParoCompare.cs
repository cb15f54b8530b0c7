using System.Text.Json.Serialization;
using Toolkit.Options;
using Toolkit.Runs;

namespace Toolkit.Paro;

/// <summary>Trains the same job under several strategies, one after another, for side-by-side measurements.</summary>
public static class ParoCompare
{
    /// <summary>Runs <paramref name="options"/>' job once per strategy of its list.</summary>
    public static Task<IReadOnlyList<ParoTrainResult>> RunAsync(ParoCompareOptions options, IProgress<(string Strategy,
        MetricPoint Point)>? progress = null,
        CancellationToken cancellationToken = default) => RunAsync(options.Job, options.StrategyList, progress,
            cancellationToken);

    /// <summary>
    /// Trains <paramref name="options"/> once per strategy in <paramref name="strategies"/>, one after another
    /// (<see cref="Jobs.JobSweep"/>: every code is checked before the first run starts).
    /// </summary>
    /// <exception cref="ArgumentException">No strategy, or one that is not a valid, effective code.</exception>
    public static Task<IReadOnlyList<ParoTrainResult>> RunAsync(ParoTrainOptions options,
        IEnumerable<string> strategies,
        IProgress<(string Strategy, MetricPoint Point)>? progress = null, CancellationToken cancellationToken = default)
    {
        var codes = strategies.Select(s => ShardingStrategy.Parse(s).Code).ToList();
        if (codes.Count == 0) throw new ArgumentException("Give at least one strategy.", nameof(strategies));
        return Jobs.JobSweep.RunAsync([.. codes.Select(code => (code, With(options, code)))],
            ParoTrainJob.RunAsync, progress, cancellationToken);
    }

    private static ParoTrainOptions With(ParoTrainOptions options, string code) =>
        options with { Sharding = options.Sharding with { Strategy = code } };
}

/// <summary>Options of <c>paro compare</c>: one job, several strategies.</summary>
public sealed record ParoCompareOptions : Jobs.ICheckedOptions
{
    /// <summary>The job each strategy runs (its strategy is replaced).</summary>
    [OptionGroup(Exclude = ["strategy"])] public ParoTrainOptions Job { get; init; } = new();

    /// <summary>Strategies, comma-separated. Default NNN,NIG,GGG.</summary>
    [Option("Strategies to train one after another, comma-separated (codes or aliases).")]
    public string Strategies { get; init; } = "NNN,NIG,GGG";

    /// <summary>The strategies as a list.</summary>
    [JsonIgnore] public IReadOnlyList<string> StrategyList => [.. Strategies.Split(',',
        StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>Throws naming the first invalid option: every strategy is parsed and the job validated under
    /// it.</summary>
    public void Check()
    {
        if (StrategyList.Count == 0) throw new ArgumentOutOfRangeException(nameof(Strategies), Strategies,
            "names no strategy");
        foreach (var code in StrategyList) (Job with { Sharding = Job.Sharding with { Strategy = code } }).Validate();
    }
}
