using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>
/// Runs every distributed job the same way: validates the options, creates the run folder (whose config.json names the
/// job's kind and holds its options), starts the ranks in-process (threads) or as MPI processes (on this host, or on
/// the emulated cluster), streams metrics as progress, collects each rank's typed outcome, lets the job turn them into
/// its result, writes <c>result.json</c>, and cancels cleanly. The run folder is kept whatever happens.
/// </summary>
public static partial class JobHost
{
    /// <summary>File name of the result in the run folder.</summary>
    public const string ResultFile = "result.json";

    /// <summary>File in the run folder of multi-process runs that says which host each rank ran on.</summary>
    public const string HostsFile = "hosts.json";

    /// <summary>Folder of the per-rank outcomes of multi-process runs (<c>rank-R.json</c>).</summary>
    public const string OutcomesFolder = "outcomes";

    /// <summary>Runs <paramref name="job"/> with <paramref name="options"/>.</summary>
    /// <param name="job">The job.</param>
    /// <param name="options">Its options; validated before anything starts.</param>
    /// <param name="progress">Receives every metric as it is recorded (for MPI ranks, as the run folder is
    /// read).</param>
    /// <param name="cancellationToken">Stops in-process ranks at their next communication, or ends the MPI
    /// processes.</param>
    /// <exception cref="ArgumentException">The options are invalid (nothing was started).</exception>
    /// <exception cref="JobFailedException">MPI ranks failed (the message carries the launcher's last output and the
    /// run folder), or the job itself declared a failure. In-process ranks' own exceptions propagate as thrown: the
    /// first that is not another rank's abort.</exception>
    public static async Task<TResult> RunAsync<TOptions, TOutcome, TResult>(RankJob<TOptions, TOutcome, TResult> job,
        TOptions options,
        IProgress<MetricPoint>? progress = null, CancellationToken cancellationToken = default)
        where TOptions : class, IJobOptions, new()
    {
        options.Check();
        var launch = options.Launch.Validate();
        if (!LaunchOptions.RankLaunchers.Contains(launch.Launcher))
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.Launcher), OptionSpecName(launch.Launcher),
                $"starts batch inference's workers; {job.Kind} runs with inproc, mpi or slurm");
        // What starts the ranks is found before any folder is made.
        var launcher = launch.Launcher == Launcher.Mpi ? MpiJobLauncher.Prepare(launch) : default;
        var slurm = launch.Launcher == Launcher.Slurm ? SlurmJobLauncher.Prepare(launch) : null;
        using var run = CreateRun(options.Launch.RunsDirectory, job.RunName(options), null,
            new JobConfig<TOptions>(job.Kind, options));
        run.Log($"{job.Kind}: {launch.Ranks} ranks in groups " +
            $"of {launch.GroupSize}, {(launch.Emulate is { } shape ? $"emulated " +
                $"cluster {shape}" : OptionSpecName(launch.Launcher))}");
        try
        {
            var current = options;
            while (true)
            {
                try
                {
                    var (outcomes, output) = launch.Launcher switch
                    {
                        Launcher.InProcess => (await RunInProcessAsync(job, current, run, progress,
                            cancellationToken), ""),
                        Launcher.Slurm => await SlurmJobLauncher.RunAsync<TOutcome>(run, launch, slurm!, job.Kind,
                            progress, cancellationToken, RestartsInAllocation(job, options)),
                        _ => await MpiJobLauncher.RunAsync<TOutcome>(run, launch, launcher, progress,
                            cancellationToken),
                    };
                    // restarts inside a Slurm allocation rewrote config.json
                    if (launch.Launcher == Launcher.Slurm) current = ReadOptions<TOptions>(run.Path);
                    var result = job.Finish(new JobRun<TOptions>(run.Path, current, output), outcomes);
                    ToolkitJson.Write(run.File(ResultFile), result);
                    run.Log("finished");
                    return result;
                }
                catch (Exception e) when (job is IRestartableJob<TOptions> restartable && !cancellationToken
                    .IsCancellationRequested && Restarts.Read(run.Path).Count < restartable.MaxRestarts(options)
                    && e is not ArgumentException)
                {
                    // a Slurm batch job restarts inside its allocation first: those restarts count too
                    current = Restart(run, job.Kind, restartable, options, e.Message);
                }
            }
        }
        catch (Exception e)
        {
            run.Log($"failed: {e}");
            throw;
        }
    }

    /// <summary>Reads the result a finished run wrote.</summary>
    public static TResult ReadResult<TResult>(string runPath) => ToolkitJson.Read<TResult>(Path.Combine(runPath,
        ResultFile));

    /// <summary>
    /// The rank entry point of multi-process jobs (<c>toolkit rank --run DIR</c>, started by mpiexec or srun): reads
    /// the kind from the run folder's config.json and runs that job's body for this process's rank; returns the
    /// process's exit code.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is not a run folder, or names a kind this toolkit does not
    /// know.</exception>
    public static int RunRankProcess(string runPath, CancellationToken cancel = default)
    {
        var (job, options) = ReadConfig(runPath);
        return job.RunRankProcess(runPath, options, cancel);
    }

    /// <summary>The job a run folder's config.json names, and its options.</summary>
    /// <exception cref="InvalidDataException">The folder is not a run folder, or names a kind this toolkit does not
    /// know.</exception>
    private static (IRankJob Job, JsonElement Options) ReadConfig(string runPath,
        string file = RunDirectory.ConfigFile)
    {
        var configPath = Path.Combine(runPath, file);
        using var config = JsonDocument.Parse(File.Exists(configPath)
            ? File.ReadAllText(configPath)
                : throw new InvalidDataException($"{runPath} is not a run folder: it has no {file}."));
        if (!config.RootElement.TryGetProperty("kind", out var kind) || kind.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{configPath} names no job kind.");
        if (!config.RootElement.TryGetProperty("options", out var options) || options.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{configPath} holds no options.");
        return (JobCatalog.Find(kind.GetString()!), options.Clone());
    }

    /// <summary>The options in a run folder's config.json (or in another file of the same shape).</summary>
    private static TOptions ReadOptions<TOptions>(string runPath, string file = RunDirectory.ConfigFile) =>
        ReadConfig(runPath, file).Options.Deserialize<TOptions>(ToolkitJson.Options)
            ?? throw new InvalidDataException($"{runPath}/{file} holds no options.");

    internal static void RunRankProcess<TOptions, TOutcome, TResult>(RankJob<TOptions, TOutcome, TResult> job,
        string runPath, TOptions options)
        where TOptions : class, IJobOptions, new()
    {
        if (job.UsesTorch) TorchRuntime.EnsureInitialized();
        using var comm = MpiCluster.InitializeWorld(options.Launch.GroupSize);
        using var run = RunDirectory.Attach(runPath, comm.Rank);
        try
        {
            if (comm.Size != options.Launch.Ranks)
                throw new InvalidOperationException(
                    $"mpiexec started {comm.Size} ranks but the job asks for {options.Launch.Ranks}.");
            if (job.UsesTorch) Devices.ConfigureCpuThreads(MpiCluster.LocalRanksFromLauncher() ?? comm.GroupSize);
            Directory.CreateDirectory(Path.Combine(runPath, OutcomesFolder));
            File.WriteAllText(HostPath(runPath, comm.Rank), Environment.MachineName);
            var outcome = job.RunRank(new RankContext<TOptions>(comm, options, run, null, CancellationToken.None));
            ToolkitJson.Write(OutcomePath(runPath, comm.Rank), outcome);
            comm.Barrier();
        }
        catch (Exception e)
        {
            run.Log($"failed: {e}");
            throw;
        }
    }

    /// <summary>Creates <c>ROOT/PREFIX-time-random</c>, or <c>ROOT/NAME</c> when the job names its folder, with
    /// <paramref name="config"/> as its config.json.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The folder cannot be created (names --runs-dir).</exception>
    private static RunDirectory CreateRun(string root, string prefix, string? name, object config)
    {
        try
        {
            return name is null ? RunDirectory.Create(root, prefix, config) : RunDirectory.CreateNamed(root, name,
                config);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.RunsDirectory), root,
                $"a run folder cannot be created there ({e.Message})");
        }
    }

    internal static string OutcomePath(string runPath, int rank) => Path.Combine(runPath, OutcomesFolder,
        $"rank-{rank}.json");

    internal static string HostPath(string runPath, int rank) => Path.Combine(runPath, OutcomesFolder,
        $"rank-{rank}.host");

    private static Task<TOutcome[]> RunInProcessAsync<TOptions, TOutcome, TResult>(RankJob<TOptions, TOutcome,
        TResult> job, TOptions options, RunDirectory run,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken)
        where TOptions : class, IJobOptions, new()
    {
        if (job.UsesTorch)
        {
            TorchRuntime.EnsureInitialized();
            Devices.ConfigureCpuThreads(options.Launch.Ranks);
        }
        return InProcessCluster.RunAsync(options.Launch.Ranks, options.Launch.GroupSize,
            comm => job.RunRank(new RankContext<TOptions>(comm, options, run, progress, cancellationToken)),
                cancellationToken);
    }

    private static string OptionSpecName(Launcher launcher) => Options.OptionSpec.EnumName(typeof(Launcher), launcher);
}

/// <summary>A change in a job's state that is not a metric: a Slurm job submitted, pending (with the scheduler's
/// reason), running, ended.</summary>
/// <param name="Time">When it was seen.</param>
/// <param name="State">Short state: submitted, pending, running, completed, failed, cancelled...</param>
/// <param name="Message">What to show a user ("Slurm job 12 pending (Resources)").</param>
/// <remarks>A job's progress receives these when it also implements <see cref="IProgress{JobStatus}"/>.</remarks>
public sealed record JobStatus(DateTimeOffset Time, string State, string Message);

/// <summary>What a run folder's config.json holds: the job's kind and its options.</summary>
/// <param name="Kind">The job kind (<c>paro-train</c>).</param>
/// <param name="Options">The resolved options.</param>
internal sealed record JobConfig<TOptions>(string Kind, TOptions Options);

/// <summary>A job's ranks failed; the message says why and where the run folder is.</summary>
public class JobFailedException(string message, Exception? inner = null) : Exception(message, inner);
