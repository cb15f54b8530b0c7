using System.Text.Json.Serialization;
using Toolkit.Options;
using Toolkit.Runs;

namespace Toolkit.Rl;

/// <summary>Options of <c>rl train</c> and <c>#!rl train</c>: one job, or the same job once per correction.</summary>
public sealed record RlRunOptions : Jobs.ICheckedOptions
{
    /// <summary>The job.</summary>
    [OptionGroup] public RlTrainOptions Job { get; init; } = new();

    /// <summary>Corrections to run one after another (e.g. <c>none,tis,icepop</c>); none: just the job's own.</summary>
    [Option("Run the job once per correction, one after another, and compare them (e.g. none,tis,icepop); none: the " +
        "job's --correction only.")]
    public string? Compare { get; init; }

    /// <summary>The jobs to run, in order.</summary>
    [JsonIgnore] public IReadOnlyList<RlTrainOptions> Jobs => Compare is null
        ? [Job]
        : [.. Compare.Split(',',
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c
                => Job with { Correction = Job.Correction with { Correction = ParseCorrection(c) } })];

    private static Correction ParseCorrection(string name) =>
        Enum.GetValues<Correction>().Cast<Correction?>().FirstOrDefault(c => OptionSpec.EnumName(typeof(Correction),
            c!.Value) == name.ToLowerInvariant())
            ?? throw new ArgumentOutOfRangeException(nameof(Compare), name,
                $"is not a correction; valid: {string.Join(", ", OptionSpec.EnumNames(typeof(Correction)))}");

    /// <summary>Throws naming the first invalid option.</summary>
    public RlRunOptions Validate()
    {
        if (Jobs.Count == 0) throw new ArgumentOutOfRangeException(nameof(Compare), Compare,
            $"names no correction; give some of {string.Join(", ", OptionSpec.EnumNames(typeof(Correction)))}");
        foreach (var job in Jobs) job.Validate();
        return this;
    }

    void Jobs.ICheckedOptions.Check() => Validate();
}

/// <summary>Runs <see cref="RlRunOptions.Jobs"/> one after another; progress carries which run a metric belongs
/// to.</summary>
public static class RlCompare
{
    /// <summary>Runs every job; returns their results in order.</summary>
    public static Task<IReadOnlyList<RlTrainResult>> RunAsync(RlRunOptions options, IProgress<(string Run,
        MetricPoint Point)>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        return Toolkit.Jobs.JobSweep.RunAsync(
            [.. options.Jobs.Select(job => (OptionSpec.EnumName(typeof(Correction), job.Correction.Correction), job))],
            RlTrainJob.RunAsync, progress, cancellationToken);
    }
}
