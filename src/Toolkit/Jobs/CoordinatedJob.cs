using System.Text.Json;
using Toolkit.Runs;

namespace Toolkit.Jobs;

/// <summary>
/// A job of one coordinator and the workers it hands work to (batch inference): everything the <see cref="JobHost"/>
/// needs from it. Under launchers that start ranks (<c>mpi</c>, <c>slurm</c>) rank 0 coordinates and every other rank
/// works, started by the same <c>toolkit rank --run DIR</c> as every job's ranks; a worker that fails does not end the
/// others. Under the others (<c>inproc</c>, <c>local</c>, <c>external</c>) the coordinator runs in the launching
/// process and starts, or waits for, its own workers. Either way the host makes the run folder, writes the
/// coordinator's result to <c>result.json</c>, and the job can be resumed in the same folder.
/// </summary>
/// <typeparam name="TOptions">The options record (also the run folder's config).</typeparam>
/// <typeparam name="TResult">What the coordinator returns; written to <c>result.json</c>.</typeparam>
public abstract class CoordinatedJob<TOptions, TResult> : IRankJob
    where TOptions : class, IJobOptions, new()
{
    /// <summary>The job's kind in config.json (<c>infer</c>): how a rank process finds its body.</summary>
    public abstract string Kind { get; }

    /// <summary>The run folder's name: null for the kind and a unique suffix, or a fixed name.</summary>
    public virtual string? FolderName(TOptions options) => null;

    /// <summary>The launch the host runs: by default the options' own.</summary>
    public virtual LaunchOptions RankLaunch(TOptions options) => options.Launch;

    /// <summary>Checks what must hold before a run folder is made (an input that reads), after the options'
    /// own check.</summary>
    public virtual void Prepare(TOptions options) { }

    /// <summary>Runs the coordinator until the job ends (or is cancelled) and returns its result.</summary>
    public abstract Task<TResult> CoordinateAsync(CoordinatorContext<TOptions> context);

    /// <summary>One worker rank (mpi, slurm): works for the coordinator until the job ends; true when it ended
    /// well.</summary>
    public abstract Task<bool> WorkAsync(WorkerContext<TOptions> context);

    /// <summary>Whether a result is a success (the coordinator rank's exit code is 0).</summary>
    public virtual bool Succeeded(TResult result) => true;

    /// <summary>How many times mpiexec's ranks are started again, resuming the job, when they end before the
    /// coordinator wrote its result and no rank failed with an error of its own (a rank killed, the OOM killer:
    /// mpiexec tears every rank down when one dies). 0: never.</summary>
    public virtual int MaxRelaunches(TOptions options) => 0;

    /// <summary>Called before ranks start in the run folder (for a resumed job too): clears what a previous
    /// coordinator left.</summary>
    public virtual void BeforeRanks(string runPath) { }

    /// <summary>Called about twice a second while the ranks run, and once when they have ended.</summary>
    public virtual void WhileRanksRun(string runPath) { }

    /// <summary>Reads the options a rank process finds in the run folder's config.json.</summary>
    public virtual TOptions ReadOptions(string runPath, JsonElement options) =>
        options.Deserialize<TOptions>(Runtime.ToolkitJson.Options)
            ?? throw new InvalidDataException($"{runPath}/{RunDirectory.ConfigFile} holds no options.");

    /// <summary>Receives a Slurm job's state changes (submitted, pending with the scheduler's reason,
    /// running...).</summary>
    public virtual void OnStatus(JobStatus status) { }

    Type IRankJob.OptionsType => typeof(TOptions);

    int IRankJob.RunRankProcess(string runPath, JsonElement options, CancellationToken cancel) =>
        JobHost.RunCoordinatedRankAsync(this, runPath, ReadOptions(runPath, options), cancel).GetAwaiter().GetResult();
}

/// <summary>What a coordinator gets: the options, the run folder, where its workers are, and cancellation.</summary>
public sealed class CoordinatorContext<TOptions>
{
    private readonly RunDirectory _run;

    internal CoordinatorContext(RunDirectory run, TOptions options, bool workersAreRanks, CancellationToken cancel)
    {
        (_run, Options, WorkersAreRanks, CancellationToken) = (run, options, workersAreRanks, cancel);
    }

    /// <summary>The job's options.</summary>
    public TOptions Options { get; }

    /// <summary>True when the workers are the job's other ranks (mpi, slurm): they are not the coordinator's to
    /// start, and reach it from other hosts.</summary>
    public bool WorkersAreRanks { get; }

    /// <summary>Cancelled when the job is stopped; the coordinator then ends as it can, and the job can be
    /// resumed.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>The run folder.</summary>
    public string RunPath => _run.Path;

    /// <summary>The run folder's name.</summary>
    public string RunId => _run.Id;

    /// <summary>A path inside the run folder.</summary>
    public string File(string name) => _run.File(name);

    /// <summary>Appends a line to the run's log.</summary>
    public void Log(string message) => _run.Log(message);

    internal RunDirectory Run => _run;
}

/// <summary>What a worker rank gets: the options, the run folder, its rank, and cancellation.</summary>
/// <param name="Options">The job's options.</param>
/// <param name="RunPath">The run folder.</param>
/// <param name="Rank">Its rank (1 and up; 0 is the coordinator).</param>
/// <param name="CancellationToken">Cancelled when the rank is stopped.</param>
public sealed record WorkerContext<TOptions>(TOptions Options, string RunPath, int Rank,
    CancellationToken CancellationToken);
