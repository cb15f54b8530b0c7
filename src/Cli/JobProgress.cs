using Toolkit.Jobs;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary>A job's progress on the console: metrics to an action, state changes (a Slurm job pending with its reason,
/// running, ended) to standard error.</summary>
internal sealed class JobProgress(Action<MetricPoint>? metric = null) : IProgress<MetricPoint>, IProgress<JobStatus>
{
    public void Report(MetricPoint value) => metric?.Invoke(value);

    public void Report(JobStatus value) => PrintStatus(value);

    internal static void PrintStatus(JobStatus value)
        => Console.Error.WriteLine($"[{value.Time.ToLocalTime():HH:mm:ss}] {value.Message}");
}

/// <summary>The same for jobs that run several named runs (rl train --correction a,b).</summary>
internal sealed class NamedRunProgress(Action<(string Run, MetricPoint Point)> metric) : IProgress<(string Run,
    MetricPoint Point)>, IProgress<JobStatus>
{
    public void Report((string Run, MetricPoint Point) value) => metric(value);

    public void Report(JobStatus value) => JobProgress.PrintStatus(value);
}
