using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Runs;

namespace Toolkit.Jobs;

/// <summary>
/// A job that runs on ranks: everything the <see cref="JobHost"/> needs from it. A new job writes a subclass with its
/// kind, its per-rank body and how the ranks' outcomes become its result; the host does the rest (run folder, launching
/// in-process, under mpiexec or on the emulated cluster, metrics as progress, outcomes as JSON per rank, result.json,
/// cancellation).
/// </summary>
/// <typeparam name="TOptions">The options record (also the run folder's config).</typeparam>
/// <typeparam name="TOutcome">What one rank returns; serialised as JSON when ranks are processes.</typeparam>
/// <typeparam name="TResult">What the job returns; written to <c>result.json</c>.</typeparam>
public abstract class RankJob<TOptions, TOutcome, TResult> : IRankJob
    where TOptions : class, IJobOptions, new()
{
    /// <summary>The job's kind in config.json (<c>paro-train</c>): how a rank process finds its body.</summary>
    public abstract string Kind { get; }

    /// <summary>True when ranks use TorchSharp: the host prepares its native runtime and sizes CPU threads by
    /// co-located ranks.</summary>
    public virtual bool UsesTorch => true;

    /// <summary>The run folder's name prefix (default: the kind).</summary>
    public virtual string RunName(TOptions options) => Kind;

    /// <summary>The body of one rank. Called once per rank, concurrently; throw to fail the job.</summary>
    public abstract TOutcome RunRank(RankContext<TOptions> context);

    /// <summary>Turns every rank's outcome (in rank order) into the result, in the launching process; may write a
    /// report into the run folder.</summary>
    public abstract TResult Finish(JobRun<TOptions> run, IReadOnlyList<TOutcome> outcomes);

    Type IRankJob.OptionsType => typeof(TOptions);

    int IRankJob.RunRankProcess(string runPath, JsonElement options, CancellationToken cancel)
    {
        JobHost.RunRankProcess(this, runPath, options.Deserialize<TOptions>(Runtime.ToolkitJson.Options)
            ?? throw new InvalidDataException($"{runPath}/{RunDirectory.ConfigFile} holds no options."));
        return 0;
    }

    bool IRankJob.RestartInAllocation(string runPath, JsonElement options, string cause) =>
        this is IRestartableJob<TOptions> restartable && JobHost.RestartInAllocation(restartable, Kind, runPath,
            options.Deserialize<TOptions>(Runtime.ToolkitJson.Options)!, cause);
}

/// <summary>The untyped face of a <see cref="RankJob{TOptions, TOutcome, TResult}"/> or a
/// <see cref="CoordinatedJob{TOptions, TResult}"/>, for the rank entry point's dispatch.</summary>
internal interface IRankJob
{
    /// <summary>The job's kind in config.json.</summary>
    string Kind { get; }

    /// <summary>The options record type.</summary>
    Type OptionsType { get; }

    /// <summary>Runs this process's rank of a job whose run folder is <paramref name="runPath"/>; returns the
    /// process's exit code.</summary>
    int RunRankProcess(string runPath, JsonElement options, CancellationToken cancel);

    /// <summary>Restarts the run from its latest checkpoint if its options allow another restart (see
    /// <see cref="JobHost.RestartInAllocation(string, string)"/>).</summary>
    bool RestartInAllocation(string runPath, JsonElement options, string cause) => false;

    /// <summary>Receives the state changes of a Slurm job whose ranks are the job's (submitted, pending,
    /// running...), when its launcher does not report them otherwise.</summary>
    void OnStatus(JobStatus status) { }
}

/// <summary>What a rank's body gets: its communicator, the options, its view of the run folder, and
/// cancellation.</summary>
public sealed class RankContext<TOptions>
{
    private readonly RunDirectory _run;
    private readonly IProgress<MetricPoint>? _progress;

    internal RankContext(Communicator comm, TOptions options, RunDirectory run, IProgress<MetricPoint>? progress,
        CancellationToken cancellationToken)
    {
        (Comm, Options, _run, _progress, CancellationToken) = (comm, options, run, progress, cancellationToken);
    }

    /// <summary>This rank's world communicator.</summary>
    public Communicator Comm { get; }

    /// <summary>The job's options.</summary>
    public TOptions Options { get; }

    /// <summary>The run folder.</summary>
    public string RunPath => _run.Path;

    /// <summary>Cancelled when the user cancels the job (in-process ranks; MPI ranks are ended by the
    /// launcher).</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Records a metric of this rank: to the run folder, and as progress to the caller.</summary>
    public void Record(int step, string name, double value)
    {
        _run.Metric(step, Comm.WorldRank, name, value);
        _progress?.Report(new MetricPoint(DateTimeOffset.UtcNow, step, Comm.WorldRank, name, value));
    }

    /// <summary>Appends a line to the run's log.</summary>
    public void Log(string message) => _run.Log($"rank {Comm.WorldRank}: {message}");
}

/// <summary>A finished job's run folder and options, as <see cref="RankJob{TOptions, TOutcome, TResult}.Finish"/> sees
/// them.</summary>
/// <param name="Path">The run folder.</param>
/// <param name="Options">The options the job ran with.</param>
/// <param name="LauncherOutput">What mpiexec (or the emulated cluster) printed; empty for in-process runs.</param>
public sealed record JobRun<TOptions>(string Path, TOptions Options, string LauncherOutput)
{
    /// <summary>The run folder's name.</summary>
    public string Id => System.IO.Path.GetFileName(Path);

    /// <summary>A path inside the run folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);
}
