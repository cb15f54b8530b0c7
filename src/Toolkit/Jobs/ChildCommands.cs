using Toolkit.Options;

namespace Toolkit.Jobs;

/// <summary>
/// The <c>toolkit</c> verbs the library starts in other processes (under mpiexec and srun, as worker processes, in
/// Kubernetes pods), declared once: the CLI builds these commands from the same names and option records, and the
/// library builds their command lines from the records' declarations (<see cref="OptionSchema.Arguments{T}"/>).
/// </summary>
internal static class ChildCommands
{
    /// <summary>One rank of a multi-process job: <c>toolkit rank --run DIR</c>.</summary>
    public static IReadOnlyList<string> Rank { get; } = ["rank"];

    /// <summary>Restarts a training run from its latest checkpoint between Slurm job steps:
    /// <c>toolkit rank-restart --run DIR --cause TEXT</c>.</summary>
    public static IReadOnlyList<string> RankRestart { get; } = ["rank-restart"];

    /// <summary>A batch-inference job: <c>toolkit infer run ...</c>.</summary>
    public static IReadOnlyList<string> InferRun { get; } = ["infer", "run"];

    /// <summary>Resumes a batch-inference job: <c>toolkit infer resume DIR</c>.</summary>
    public static IReadOnlyList<string> InferResume { get; } = ["infer", "resume"];

    /// <summary>A batch-inference worker: <c>toolkit infer worker --coordinator ADDR ...</c>.</summary>
    public static IReadOnlyList<string> InferWorker { get; } = ["infer", "worker"];

    /// <summary>The arguments of <paramref name="verb"/> with <paramref name="options"/> (its non-default
    /// ones).</summary>
    public static IReadOnlyList<string> Of<T>(IReadOnlyList<string> verb, T options) where T : class, new() =>
        [.. verb, .. OptionSchema.Arguments(options, new T())];
}

/// <summary>The options of <c>toolkit rank</c>: the run folder whose <c>config.json</c> names the job.</summary>
internal sealed record RankProcessOptions : ICheckedOptions
{
    /// <summary>The run folder.</summary>
    [Option("Run folder whose config.json names the job kind and holds its options.")]
    public string? Run { get; init; }

    /// <inheritdoc/>
    public void Check()
    {
        if (string.IsNullOrWhiteSpace(Run)) throw new ArgumentException("is required: the run folder", nameof(Run));
    }
}

/// <summary>The options of <c>toolkit rank-restart</c>: the run folder and why its last job step failed.</summary>
internal sealed record RankRestartOptions : ICheckedOptions
{
    /// <summary>The run folder.</summary>
    [Option("Run folder of the training run to restart from its latest checkpoint.")]
    public string? Run { get; init; }

    /// <summary>Why the restart happens (recorded in restarts.jsonl).</summary>
    [Option("Why the run restarts, as restarts.jsonl and the log record it.")]
    public string Cause { get; init; } = "the job step failed";

    /// <inheritdoc/>
    public void Check()
    {
        if (string.IsNullOrWhiteSpace(Run)) throw new ArgumentException("is required: the run folder", nameof(Run));
    }
}
