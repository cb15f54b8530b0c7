using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

public static partial class JobHost
{
    /// <summary>Runs the coordinated job <paramref name="job"/> with <paramref name="options"/> in a new run
    /// folder.</summary>
    /// <param name="job">The job.</param>
    /// <param name="options">Its options; checked before anything starts.</param>
    /// <param name="cancellationToken">Stops the coordinator (in this process), or the ranks; the job can be
    /// resumed.</param>
    /// <exception cref="ArgumentException">The options are invalid (nothing was started).</exception>
    /// <exception cref="JobFailedException">The ranks ended before the coordinator wrote its result (the message
    /// carries the launcher's last output and the run folder).</exception>
    public static Task<TResult> RunAsync<TOptions, TResult>(CoordinatedJob<TOptions, TResult> job, TOptions options,
        CancellationToken cancellationToken = default)
        where TOptions : class, IJobOptions, new() =>
        RunCoordinatedAsync(job, options, null, cancellationToken);

    /// <summary>Runs the coordinated job <paramref name="job"/> again in its run folder <paramref name="runPath"/>,
    /// with <paramref name="options"/> (the job decides what a resumed run may change).</summary>
    /// <inheritdoc cref="RunAsync{TOptions, TResult}(CoordinatedJob{TOptions, TResult}, TOptions, CancellationToken)"/>
    public static Task<TResult> ResumeAsync<TOptions, TResult>(CoordinatedJob<TOptions, TResult> job, string runPath,
        TOptions options, CancellationToken cancellationToken = default)
        where TOptions : class, IJobOptions, new() =>
        RunCoordinatedAsync(job, options, runPath, cancellationToken);

    private static async Task<TResult> RunCoordinatedAsync<TOptions, TResult>(CoordinatedJob<TOptions, TResult> job,
        TOptions options, string? resume, CancellationToken cancel)
        where TOptions : class, IJobOptions, new()
    {
        options.Check();
        var launch = job.RankLaunch(options).Validate();
        job.Prepare(options);
        // What starts the ranks is found before any folder is made.
        var mpi = launch.Launcher == Launcher.Mpi ? MpiJobLauncher.Prepare(launch) : default;
        var slurm = launch.Launcher == Launcher.Slurm ? SlurmJobLauncher.Prepare(launch) : null;
        using var run = resume is not null
            ? RunDirectory.Reopen(resume)
            : CreateRun(options.Launch.RunsDirectory, job.Kind, job.FolderName(options),
                new JobConfig<TOptions>(job.Kind, options));
        if (resume is not null) run.Log("resumed");
        try
        {
            if (launch.Launcher is not (Launcher.Mpi or Launcher.Slurm))
            {
                var result = await job.CoordinateAsync(new CoordinatorContext<TOptions>(run, options, false, cancel));
                ToolkitJson.Write(run.File(ResultFile), result);
                return result;
            }
            for (var relaunches = 0; ; relaunches++)
            {
                job.BeforeRanks(run.Path);
                File.Delete(run.File(ResultFile));
                File.Delete(run.File(RankFailureFile));
                // a rank that failed with an error of its own ends the ranks (mpiexec waits for a rank that exits)
                using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                void Tick()
                {
                    job.WhileRanksRun(run.Path);
                    if (File.Exists(run.File(RankFailureFile))) failed.Cancel();
                }
                var (ended, output) = ("a rank failed", "");
                try
                {
                    (ended, output) = slurm is null
                        ? await RanksUnderLauncherAsync(run, mpi, Tick, false, failed.Token)
                        : await RanksUnderSlurmAsync(run, launch, slurm, job, Tick, failed.Token);
                }
                catch (Exception e) when (!cancel.IsCancellationRequested && (File.Exists(run.File(RankFailureFile))
                    || e is OperationCanceledException && failed.IsCancellationRequested))
                {
                    output = File.Exists(run.File(MpiJobLauncher.OutputFile))
                        ? File.ReadAllText(run.File(MpiJobLauncher.OutputFile)) : "";
                }
                job.WhileRanksRun(run.Path);
                var failure = File.Exists(run.File(RankFailureFile))
                    ? File.ReadAllText(run.File(RankFailureFile)).Trim() : null;
                // a job the ranks completed stands; one they ended because a rank failed (stopped, say "cancelled")
                // fails with that rank's error
                if (File.Exists(run.File(ResultFile))
                    && (failure is null || job.Succeeded(ReadResult<TResult>(run.Path)))) break;
                // only mpiexec ends every rank when one dies; srun and Slurm jobs let the others go on
                if (failure is null && launch.Launcher == Launcher.Mpi && relaunches < job.MaxRelaunches(options)
                    && !cancel.IsCancellationRequested)
                {
                    var attempt = Restarts.Read(run.Path).Count + 1;
                    Restarts.Record(run, new JobRestart(attempt, DateTimeOffset.UtcNow, ended, 0),
                        "the ranks start again and resume the job (committed work is kept)");
                    continue;
                }
                throw new JobFailedException((failure is null ? $"{ended} before the coordinator (rank 0) wrote " +
                    "its result" : $"{failure.Split('\n')[0]}; the ranks were stopped") + "; the job can be resumed. " +
                        $"Run folder: {run.Path}.{(output.Length > 0 ? $" Last output:\n{MpiJobLauncher.Tail(output)}"
                            : "")}");
            }
            File.Delete(run.File(RankFailureFile));
            run.Log("finished");
            return ReadResult<TResult>(run.Path);
        }
        catch (Exception e)
        {
            run.Log($"failed: {e}");
            throw;
        }
    }

    /// <summary>
    /// This process's rank of a coordinated job started by mpiexec or srun (its rank from hydra's <c>PMI_RANK</c> or
    /// Slurm's <c>SLURM_PROCID</c>): rank 0 coordinates and writes the result, every other rank works.
    /// </summary>
    internal static async Task<int> RunCoordinatedRankAsync<TOptions, TResult>(CoordinatedJob<TOptions, TResult> job,
        string runPath, TOptions options, CancellationToken cancel)
        where TOptions : class, IJobOptions, new()
    {
        var rank = int.TryParse(Environment.GetEnvironmentVariable("PMI_RANK")
            ?? Environment.GetEnvironmentVariable("SLURM_PROCID"), out var r) ? r : 0;
        try
        {
            if (rank != 0)
                return await job.WorkAsync(new WorkerContext<TOptions>(options, runPath, rank, cancel)) ? 0 : 1;
            using var run = RunDirectory.Reopen(runPath);
            try
            {
                var result = await job.CoordinateAsync(new CoordinatorContext<TOptions>(run, options, true, cancel));
                ToolkitJson.Write(run.File(ResultFile), result);
                return job.Succeeded(result) ? 0 : 1;
            }
            catch (Exception e)
            {
                run.Log($"rank 0: failed: {e}");
                throw;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // an error of the job's own: starting the ranks again would meet it again
            var message = e.Message.StartsWith($"rank {rank}:", StringComparison.Ordinal) ? e.Message
                : $"rank {rank}: {e.Message}";
            File.AppendAllText(Path.Combine(runPath, RankFailureFile), message + "\n");
            throw;
        }
    }

    /// <summary>Where a rank of a coordinated job that failed with an error of its own says so (the job host then
    /// reports it instead of starting the ranks again).</summary>
    internal const string RankFailureFile = "rank-failure.txt";

    /// <summary>Runs the ranks under mpiexec, the emulated cluster or srun until they exit; returns how they ended
    /// and what the launcher printed.</summary>
    private static async Task<(string How, string Output)> RanksUnderLauncherAsync(RunDirectory run,
        (string File, IReadOnlyList<string> Arguments) launcher, Action tick, bool gracefulStop,
        CancellationToken cancel)
    {
        var arguments = (IReadOnlyList<string>)[.. launcher.Arguments, .. MpiJobLauncher.RankVerb(run.Path)];
        run.Log($"launch: {launcher.File} {string.Join(' ', arguments)}");
        var (exitCode, output) = await ChildProcess.RunLauncherAsync(launcher.File, arguments,
            run.File(MpiJobLauncher.OutputFile), TimeSpan.FromMilliseconds(500), tick, gracefulStop, cancel);
        return ($"the ranks' launcher ({Path.GetFileName(launcher.File)}) exited with code {exitCode}", output);
    }

    /// <summary>
    /// Runs the ranks as a Slurm job step (inside an allocation) or submits them as a Slurm job and follows it; a
    /// worker that fails does not end the others. A Slurm job that ends in another state than COMPLETED after the
    /// coordinator wrote its result is a warning: the result decides.
    /// </summary>
    private static async Task<(string How, string Output)> RanksUnderSlurmAsync(RunDirectory run, LaunchOptions launch,
        SlurmJobLauncher.Plan plan, IRankJob job, Action tick, CancellationToken cancel)
    {
        if (plan.Mode == SlurmSubmit.Srun)
            return await RanksUnderLauncherAsync(run, (SlurmClient.Require("srun"), ["--mpi=pmi2",
                "--kill-on-bad-exit=0", .. SlurmJobLauncher.ResourceArguments(launch, plan.ExtraArguments),
                .. plan.Entry]), tick, gracefulStop: true, cancel);
        try
        {
            var (jobId, state, output) = await SlurmJobLauncher.SubmitAndFollowAsync(run, launch, plan, job.Kind,
                new SlurmStates(job), tick, () => File.Exists(run.File(ResultFile)), cancel, killOnBadExit: false);
            return ($"Slurm job {jobId} ended {state}", output);
        }
        catch (JobFailedException e) when (File.Exists(run.File(ResultFile)))
        {
            run.Log($"warning: {e.Message}");
            return ("the Slurm job ended", "");
        }
    }

    /// <summary>Slurm's state changes (also in the run log) for the job to show.</summary>
    private sealed class SlurmStates(IRankJob job) : IProgress<MetricPoint>, IProgress<JobStatus>
    {
        public void Report(MetricPoint value) { }

        public void Report(JobStatus value) => job.OnStatus(value);
    }
}
