using System.Text.Json;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

public static partial class JobHost
{
    /// <summary>
    /// Restarts the training run in <paramref name="runPath"/> from its latest intact checkpoint if its
    /// <c>--max-restarts</c> allows another restart (<c>toolkit rank-restart</c>, which a Slurm batch script runs
    /// between job steps, so the restart stays inside the allocation); returns false when none is left or the job
    /// does not restart.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is not a run folder.</exception>
    public static bool RestartInAllocation(string runPath, string cause)
    {
        // the options as the run was started: a restart's own point to a checkpoint --keep-checkpoints may remove
        var (job, options) = ReadConfig(runPath, File.Exists(Path.Combine(runPath, InitialConfigFile))
            ? InitialConfigFile : RunDirectory.ConfigFile);
        return job.RestartInAllocation(runPath, options, cause);
    }

    /// <summary>The run's config.json as it was started, kept when a restart first rewrites config.json.</summary>
    public const string InitialConfigFile = "config.initial.json";

    /// <summary>True when a Slurm batch job of <paramref name="job"/> restarts its failed job steps itself.</summary>
    private static bool RestartsInAllocation<TOptions>(object job, TOptions options) =>
        job is IRestartableJob<TOptions> restartable && restartable.MaxRestarts(options) > 0;

    internal static bool RestartInAllocation<TOptions>(IRestartableJob<TOptions> job, string kind, string runPath,
        TOptions options, string cause)
        where TOptions : class, IJobOptions, new()
    {
        if (Restarts.Read(runPath).Count >= job.MaxRestarts(options)) return false;
        using var run = RunDirectory.Reopen(runPath);
        Restart(run, kind, job, options, cause);
        return true;
    }

    /// <summary>
    /// Records a restart and returns the options that continue the run from its latest intact checkpoint (or the
    /// ones given, the run's initial options, when there is none); the ranks of another process read them from
    /// <c>config.json</c>.
    /// </summary>
    private static TOptions Restart<TOptions>(RunDirectory run, string kind, IRestartableJob<TOptions> job,
        TOptions options, string cause)
        where TOptions : class, IJobOptions, new()
    {
        var latest = Checkpoints.CheckpointFolders.List(run.Path).Count > 0
            ? Checkpoints.CheckpointFolders.Resolve(run.Path, run.Log) : null;
        // the job's step (the folder's name), not the optimizer's: an RL step takes several optimizer steps
        var step = latest is null ? 0 : Checkpoints.CheckpointFolders.StepOf(latest);
        var attempt = Restarts.Read(run.Path).Count + 1;
        Restarts.Record(run, new JobRestart(attempt, DateTimeOffset.UtcNow, cause.Split('\n')[0], step));
        var next = latest is null ? options : job.ResumeAt(options, latest, step);
        if (!File.Exists(run.File(InitialConfigFile)))
            File.Copy(run.File(RunDirectory.ConfigFile), run.File(InitialConfigFile));
        File.WriteAllText(run.File(RunDirectory.ConfigFile), JsonSerializer.Serialize(new JobConfig<TOptions>(kind,
            next), ToolkitJson.Options));
        var outcomes = Path.Combine(run.Path, OutcomesFolder);
        if (Directory.Exists(outcomes)) Directory.Delete(outcomes, recursive: true);
        return next;
    }
}
