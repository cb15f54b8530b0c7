using Toolkit.Runs;

namespace Toolkit.Jobs;

/// <summary>
/// Runs one job several times with different options, one after another (a comparison of strategies, of
/// corrections): every run's options are checked before the first starts, each run's metrics reach
/// <c>progress</c> tagged with the run's name, and job-state changes (a Slurm job pending, running) are passed on
/// with the name in front.
/// </summary>
internal static class JobSweep
{
    /// <summary>Runs <paramref name="runs"/> in order with <paramref name="run"/>; returns the results in
    /// order.</summary>
    /// <exception cref="ArgumentException">No runs, or a run's options are invalid (nothing was started).</exception>
    public static async Task<IReadOnlyList<TResult>> RunAsync<TOptions, TResult>(
        IReadOnlyList<(string Name, TOptions Options)> runs,
        Func<TOptions, IProgress<MetricPoint>?, CancellationToken, Task<TResult>> run,
        IProgress<(string Run, MetricPoint Point)>? progress = null, CancellationToken cancellationToken = default)
        where TOptions : ICheckedOptions
    {
        if (runs.Count == 0) throw new ArgumentException("the sweep names no run", nameof(runs));
        foreach (var (_, options) in runs) options.Check();
        var results = new List<TResult>();
        foreach (var (name, options) in runs)
            results.Add(await run(options, progress is null ? null : new Tagged(name, progress), cancellationToken));
        return results;
    }

    private sealed class Tagged(string run, IProgress<(string, MetricPoint)> target)
        : IProgress<MetricPoint>, IProgress<JobStatus>
    {
        public void Report(MetricPoint value) => target.Report((run, value));

        public void Report(JobStatus value) =>
            (target as IProgress<JobStatus>)?.Report(value with { Message = $"{run}: {value.Message}" });
    }
}
