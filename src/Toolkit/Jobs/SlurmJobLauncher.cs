using System.Text;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>
/// Starts a job's ranks as the tasks of a Slurm job, and follows it:
/// <list type="bullet">
/// <item><b>sbatch</b> (outside an allocation): writes <c>slurm/job.sbatch</c> into the run folder (every resource
/// request
/// as an <c>#SBATCH</c> line, so the script can be read and resubmitted as it is), submits it, then follows the job
/// with squeue / scontrol / sacct: pending reasons, running nodes and the final state come back as
/// <see cref="JobStatus"/> and in the run log; metrics are read from the run folder on the shared file system while
/// it runs. Cancelling runs <c>scancel</c>.</item>
/// <item><b>srun</b> (inside an allocation: salloc, a batch job, a notebook kernel started in a job): the ranks are one
/// job step, started and followed like mpiexec; cancelling sends srun SIGTERM, which ends the step.</item>
/// </list>
/// Either way the ranks run <c>srun --mpi=pmi2 toolkit rank --run DIR</c>: MPICH takes its rank and size from Slurm's
/// PMI2.
/// </summary>
internal static class SlurmJobLauncher
{
    /// <summary>Folder in the run folder with the batch script, the job's record and Slurm's output file.</summary>
    public const string Folder = "slurm";
    /// <summary>The generated batch script.</summary>
    public const string ScriptFile = "job.sbatch";
    /// <summary>The submitted job's record (<see cref="SlurmJobRecord"/>).</summary>
    public const string RecordFile = "job.json";

    /// <summary>How the ranks will start, decided and checked before the run folder exists.</summary>
    public sealed record Plan(SlurmSubmit Mode, IReadOnlyList<string> Entry, IReadOnlyList<string> ExtraArguments);

    /// <exception cref="FileNotFoundException">sbatch / srun, or the toolkit command for the ranks, is missing; the
    /// message says what to install.</exception>
    /// <exception cref="ArgumentException">srun was asked for outside an allocation, or --slurm-args is
    /// malformed.</exception>
    public static Plan Prepare(LaunchOptions launch)
    {
        var mode = launch.SlurmSubmit == SlurmSubmit.Auto ? (SlurmClient.InsideAllocation
            ? SlurmSubmit.Srun : SlurmSubmit.Sbatch) : launch.SlurmSubmit;
        if (mode == SlurmSubmit.Srun && !SlurmClient.InsideAllocation)
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.SlurmSubmit), "srun",
                "needs a Slurm allocation, and SLURM_JOB_ID is not set: run inside salloc or a batch job, or use " +
                    "--slurm-submit sbatch");
        foreach (var command in mode == SlurmSubmit.Sbatch ? ["sbatch", "squeue", "scontrol",
            "scancel"] : new[] { "srun" }) SlurmClient.Require(command);
        IReadOnlyList<string> extra;
        try
        {
            extra = SlurmClient.SplitArguments(launch.Slurm.SlurmArgs);
        }
        catch (FormatException e)
        {
            throw new ArgumentOutOfRangeException(nameof(SlurmResources.SlurmArgs), launch.Slurm.SlurmArgs, e.Message);
        }
        return new(mode, RankEntryPoint.Command(), extra);
    }

    /// <summary>The resource requests, as sbatch / srun options.</summary>
    public static IReadOnlyList<string> ResourceArguments(LaunchOptions launch, IReadOnlyList<string> extra)
    {
        var result = new List<string> { $"--nodes={launch.EffectiveNodes}",
            $"--ntasks-per-node={launch.EffectiveRanksPerNode}" };
        if (launch.GpusPerNode > 0) result.Add($"--gpus-per-node={launch.GpusPerNode}");
        if (launch.Slurm.Partition is { } partition) result.Add($"--partition={partition}");
        if (launch.Slurm.Time is { } time) result.Add($"--time={time}");
        if (launch.Slurm.Account is { } account) result.Add($"--account={account}");
        result.AddRange(extra);
        return result;
    }

    /// <summary>Runs the ranks as a job step (inside an allocation) or as a batch job, and collects their
    /// outcomes; <paramref name="restartInAllocation"/>: the batch script restarts failed job steps itself
    /// (<c>toolkit rank-restart</c>).</summary>
    public static Task<(TOutcome[] Outcomes, string Output)> RunAsync<TOutcome>(RunDirectory run, LaunchOptions launch,
        Plan plan, string kind,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken, bool restartInAllocation = false)
    {
        if (plan.Mode == SlurmSubmit.Srun)
        {
            var srun = SlurmClient.Require("srun");
            return RunStepAsync<TOutcome>(run, launch, plan, srun, progress, cancellationToken);
        }
        return RunBatchAsync<TOutcome>(run, launch, plan, kind, progress, cancellationToken, restartInAllocation);
    }

    private static async Task<(TOutcome[] Outcomes, string Output)> RunStepAsync<TOutcome>(RunDirectory run,
        LaunchOptions launch, Plan plan, string srun,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken)
    {
        var allocation = Environment.GetEnvironmentVariable("SLURM_JOB_ID");
        Report(progress, run, "running",
            $"Slurm job step of allocation {allocation}: srun starts {launch.Ranks} ranks");
        try
        {
            var result = await MpiJobLauncher.RunAsync<TOutcome>(run, launch, (srun, ["--mpi=pmi2",
                "--kill-on-bad-exit=1", .. ResourceArguments(launch, plan.ExtraArguments), .. plan.Entry]),
                progress, cancellationToken, gracefulStop: true);
            Report(progress, run, "completed", $"Slurm job step of allocation {allocation} completed");
            return result;
        }
        catch (OperationCanceledException)
        {
            Report(progress, run, "cancelled", $"Slurm job step of allocation {allocation} cancelled");
            throw;
        }
        catch (Exception)
        {
            Report(progress, run, "failed",
                $"Slurm job step of allocation {allocation} failed (see the run folder's launcher.log)");
            throw;
        }
    }

    /// <summary>Writes the batch script for the run folder <paramref name="runPath"/> and returns its path.</summary>
    /// <param name="runPath">The run folder.</param>
    /// <param name="launch">The resources.</param>
    /// <param name="plan">The rank command and extra arguments.</param>
    /// <param name="kind">The job kind (the Slurm job's name is toolkit-KIND).</param>
    /// <param name="killOnBadExit">End every task when one fails (MPI ranks cannot go on without a peer;
    /// batch-inference workers can).</param>
    /// <param name="restartInAllocation">After a failed job step, <c>toolkit rank-restart</c> restarts the run from
    /// its latest checkpoint while its <c>--max-restarts</c> allows, and the step runs again in this
    /// allocation.</param>
    public static string WriteScript(string runPath, LaunchOptions launch, Plan plan, string kind,
        bool killOnBadExit = true, bool restartInAllocation = false)
    {
        var verb = MpiJobLauncher.RankVerb(runPath);
        var folder = Directory.CreateDirectory(Path.Combine(runPath, Folder)).FullName;
        var q = SlurmClient.ShellQuote;
        var script = new StringBuilder()
            .AppendLine("#!/bin/bash")
            .AppendLine($"# Written by the toolkit for the {kind} run in {runPath}.")
            .AppendLine("# Resubmit it as it is with: sbatch " + q(Path.Combine(folder, ScriptFile)))
            .AppendLine($"#SBATCH --job-name=toolkit-{kind}")
            .AppendLine(Directive(
                $"--output={Path.Combine(folder, "slurm-").Replace("%", "%%", StringComparison.Ordinal)}%j.out"));
        foreach (var a in ResourceArguments(launch, plan.ExtraArguments)) script.AppendLine(Directive(a));
        script.AppendLine(killOnBadExit
            ? "# The ranks: MPICH takes rank and size from Slurm's PMI2; any rank failing ends the step."
                : "# The tasks: task 0 is the coordinator, the others are workers; a worker failing does not end the " +
                    "others.")
            .AppendLine(
                $"srun --mpi=pmi2 {(killOnBadExit ? "--kill-on-bad-exit=1 " +
                    "" : "")}{string.Join(' ', plan.Entry.Select(q))} {string.Join(' ', verb.Select(q))}")
            .AppendLine("status=$?");
        if (restartInAllocation)
        {
            var restart = string.Join(' ', [.. plan.Entry.Select(q), .. ChildCommands.RankRestart,
                "--run", q(runPath)]);
            script.AppendLine("# A failed step restarts from the latest checkpoint in this allocation while " +
                    "--max-restarts allows.")
                .AppendLine($"while [ \"$status\" -ne 0 ] && {restart} --cause \"the job step (srun) exited with " +
                    "code $status\"; do")
                .AppendLine($"  srun --mpi=pmi2 --kill-on-bad-exit=1 {string.Join(' ', plan.Entry.Select(q))} " +
                    string.Join(' ', verb.Select(q)))
                .AppendLine("  status=$?")
                .AppendLine("done");
        }
        script
            .AppendLine($"echo \"$status\" > {q(folder)}/exit-code.\"$SLURM_JOB_ID\"")
            .AppendLine("exit \"$status\"");
        var path = Path.Combine(folder, ScriptFile);
        File.WriteAllText(path, script.ToString());
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path,
            File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
        return path;
    }

    /// <summary>An #SBATCH line; sbatch splits directives at spaces unless the argument is double-quoted.</summary>
    private static string Directive(string argument) =>
        argument.Any(c
            => char.IsWhiteSpace(c)
                || c is '"' or '\'' or '#')
                    ? $"#SBATCH \"{argument.Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : $"#SBATCH {argument}";

    private static async Task<(TOutcome[] Outcomes, string Output)> RunBatchAsync<TOutcome>(RunDirectory run,
        LaunchOptions launch, Plan plan, string kind,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken, bool restartInAllocation)
    {
        var reader = new RunReader(run.Path);
        var (jobId, state, text) = await SubmitAndFollowAsync(run, launch, plan, kind, progress,
            () => { foreach (var point in reader.ReadNew()) progress?.Report(point); },
            () => Enumerable.Range(0, launch.Ranks).All(r => File.Exists(JobHost.OutcomePath(run.Path, r))),
                cancellationToken, restartInAllocation: restartInAllocation);
        return (MpiJobLauncher.Collect<TOutcome>(
            run, launch, $"Slurm job {jobId} completed", cleanExit: true, text), text);
    }

    /// <summary>
    /// Writes the batch script, submits it and follows the job to its end: state changes to <paramref name="progress"/>
    /// (if it takes <see cref="JobStatus"/>) and the run log, <paramref name="tick"/> once a second (read metrics,
    /// report status). Returns when the job completed; Slurm's output is copied to the run folder's launcher.log.
    /// </summary>
    /// <exception cref="JobFailedException">sbatch refused the job, it can never start, or it ended in another state
    /// than COMPLETED (the message has Slurm's state, reason and the tail of its output; the run folder is
    /// kept).</exception>
    /// <exception cref="OperationCanceledException">Cancelled: the job was cancelled with scancel.</exception>
    internal static async Task<(string JobId, SlurmJobState State,
        string Output)> SubmitAndFollowAsync(RunDirectory run, LaunchOptions launch, Plan plan, string kind,
        IProgress<MetricPoint>? progress, Action tick, Func<bool> finished,
            CancellationToken cancellationToken, bool killOnBadExit = true, bool restartInAllocation = false)
    {
        var script = WriteScript(run.Path, launch, plan, kind, killOnBadExit, restartInAllocation);
        run.Log($"launch: sbatch --parsable {script}");
        var (code, output, error) = SlurmClient.Run("sbatch", ["--parsable", script]);
        if (code != 0 || output.Trim().Split(';')[0] is not { Length: > 0 } jobId || !jobId.All(char.IsAsciiDigit))
            throw new JobFailedException($"sbatch refused the job: {FirstLines(error.Length > 0 ? error : output)} " +
                $"The batch script is kept in the run folder ({script}). Run folder: {run.Path}");
        var record = new SlurmJobRecord(jobId, "sbatch", script, DateTimeOffset.UtcNow,
            Environment.GetEnvironmentVariable("SLURM_CONF"));
        ToolkitJson.Write(Path.Combine(run.Path, Folder, RecordFile), record);
        Report(progress, run, "submitted", $"Slurm job {jobId} submitted");

        SlurmJobState? state = null;
        var unknownSince = (DateTimeOffset?)null;
        var hopelessSince = (DateTimeOffset?)null;
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                tick();
                var now = await Task.Run(() => SlurmClient.Query(jobId) ?? FromExitFile(run.Path, jobId),
                    CancellationToken.None);
                if (now is null)
                {
                    unknownSince ??= DateTimeOffset.UtcNow;
                    if (DateTimeOffset.UtcNow - unknownSince > TimeSpan.FromMinutes(2))
                        throw new JobFailedException(
                            $"Slurm no longer reports job {jobId} (squeue, scontrol and sacct know nothing of it) " +
                                $"and it left no exit code. Run folder: {run.Path}");
                    continue;
                }
                unknownSince = null;
                if (now.ToString() != state?.ToString())
                    Report(progress, run, now.State.ToLowerInvariant(), $"Slurm job {jobId} {now}");
                state = now;
                if (state.IsFinal) break;
                // A request the cluster can never satisfy pends forever in Slurm (unless an administrator changes the
                // limits): after a grace period, give it up with the scheduler's reason.
                if (state.State == "PENDING" && state.Reason is { } reason && NeverStarts.TryGetValue(reason,
                    out var why))
                {
                    hopelessSince ??= DateTimeOffset.UtcNow;
                    if (DateTimeOffset.UtcNow - hopelessSince > HopelessGrace)
                    {
                        SlurmClient.Cancel(jobId);
                        Report(progress, run, "given-up",
                            $"Slurm job {jobId} given up and cancelled, pending ({reason}) cannot end");
                        throw new JobFailedException($"Slurm job {jobId} cannot start: pending ({reason}), {why} " +
                            $"({launch.EffectiveNodes} node(s) x {launch.EffectiveRanksPerNode} " +
                                $"task(s){(launch.Slurm.Partition is { } p ? $" in partition {p}" : "")}" +
                            $"{(launch.Slurm.Time is { } t ? $", --time {t}" : "")}); the job was cancelled. See the " +
                                $"cluster with: sinfo. Run folder: {run.Path}");
                    }
                }
                else hopelessSince = null;
            }
        }
        catch (OperationCanceledException)
        {
            run.Log($"cancelled: scancel {jobId}");
            SlurmClient.Cancel(jobId);
            Report(progress, run, "cancelled", $"Slurm job {jobId} cancelled (scancel)");
            throw;
        }
        catch (Exception e) when (e is not JobFailedException)
        {
            // Nobody would follow the job any more: do not leave it running (or pending) on the cluster.
            run.Log($"failed while following Slurm job {jobId}: scancel {jobId}");
            SlurmClient.Cancel(jobId);
            throw;
        }
        // The ranks' files and Slurm's output may trail the state by a moment on a shared file system.
        for (var i = 0; i < 10 && state.State == "COMPLETED" && !finished(); i++)
            await Task.Delay(500, CancellationToken.None);
        tick();
        var slurmOutput = Path.Combine(run.Path, Folder, $"slurm-{jobId}.out");
        var text = File.Exists(slurmOutput) ? File.ReadAllText(slurmOutput) : "";
        File.WriteAllText(run.File(MpiJobLauncher.OutputFile), text);
        if (state.State != "COMPLETED")
        {
            if (state.State == "FAILED" && finished())
                // Every rank delivered its outcome (passed the final barrier); the failure came after, in process
                // teardown
                // (seen with MPICH 4.0 over UCX): keep the result, as for mpiexec and srun.
                run.Log($"warning: Slurm job {jobId} ended {state} after every rank finished (teardown). Slurm's " +
                    $"output ends:\n{MpiJobLauncher.Tail(text)}");
            else
                throw new JobFailedException(
                    $"Slurm job {jobId} ended {state}{Explain(state, launch)}. Run folder: {run.Path}. " +
                    $"Slurm's output ({slurmOutput}) ends:\n{MpiJobLauncher.Tail(text)}");
        }
        return (jobId, state, text);
    }

    /// <summary>How long a job may pend for a reason that does not go away by waiting before it is given up.</summary>
    /// <remarks>Two minutes: long enough for a node coming back (Slurm also says PartitionNodeLimit while required
    /// nodes are down or drained), short enough that a request the cluster cannot hold is not left pending for
    /// good.</remarks>
    internal static TimeSpan HopelessGrace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Pending reasons that waiting does not cure, and what they mean.</summary>
    private static readonly Dictionary<string, string> NeverStarts = new(StringComparer.Ordinal)
    {
        ["PartitionNodeLimit"]
            = "the request is larger than the partition allows (or the nodes it needs are down or drained)",
        ["PartitionTimeLimit"] = "the time limit asked for is longer than the partition allows",
        ["BadConstraints"] = "no node can satisfy the request",
        ["AssocMaxNodesPerJobLimit"] = "the request is larger than your account allows per job",
        ["AssocMaxWallDurationPerJobLimit"] = "the time limit is longer than your account allows",
        ["QOSMaxNodePerJobLimit"] = "the request is larger than the QOS allows per job",
        ["QOSMaxWallDurationPerJobLimit"] = "the time limit is longer than the QOS allows",
        ["InvalidAccount"] = "the account is not valid",
        ["InvalidQOS"] = "the QOS is not valid",
    };

    /// <summary>The state from the batch script's own exit-code file, when the scheduler has forgotten the
    /// job.</summary>
    private static SlurmJobState? FromExitFile(string runPath, string jobId)
    {
        var file = Path.Combine(runPath, Folder, $"exit-code.{jobId}");
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), out var code)
            ? new(code == 0 ? "COMPLETED" : "FAILED", code == 0 ? null : "NonZeroExitCode", null, $"{code}:0",
                "exit-code file")
            : null;
    }

    private static string Explain(SlurmJobState state, LaunchOptions launch) => state.State switch
    {
        "TIMEOUT" => $": it reached its time limit ({(launch.Slurm.Time is { } t ? $"--time {t}" : "the " +
            "partition's")}); ask for more with --time",
        "NODE_FAIL"
            => ": a node it ran on failed; the run folder keeps what was written before, and the job can be run again",
        "CANCELLED" => ": it was cancelled (scancel, or by an administrator)",
        "OUT_OF_MEMORY"
            => ": a rank ran out of memory; ask for more with --slurm-args \"--mem=...\" or use a sharded strategy",
        "PREEMPTED" => ": a higher-priority job preempted it",
        "BOOT_FAIL" => ": its nodes failed to boot",
        "DEADLINE" => ": it reached its deadline",
        _ => "",
    };

    private static void Report(IProgress<MetricPoint>? progress, RunDirectory run, string state, string message)
    {
        run.Log(message);
        (progress as IProgress<JobStatus>)?.Report(new JobStatus(DateTimeOffset.UtcNow, state, message));
    }

    private static string FirstLines(string text) => string.Join(" ", text.Split('\n',
        StringSplitOptions.RemoveEmptyEntries).Take(5)).Trim();
}

/// <summary>A submitted Slurm job, as kept in the run folder's <c>slurm/job.json</c> (what <c>toolkit jobs</c>
/// reads).</summary>
/// <param name="JobId">Slurm's job id.</param>
/// <param name="Mode">sbatch.</param>
/// <param name="Script">The batch script.</param>
/// <param name="Submitted">When.</param>
/// <param name="SlurmConf">SLURM_CONF at submission, if set (which cluster).</param>
internal sealed record SlurmJobRecord(string JobId, string Mode, string Script, DateTimeOffset Submitted,
    string? SlurmConf);
