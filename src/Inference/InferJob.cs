using System.Diagnostics;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Inference;

/// <summary>
/// Runs a batch-inference job: the coordinator (its state in the job folder's SQLite file), its gRPC service unless the
/// workers are in this process, the workers (child processes by default), and an autoscaler that keeps between the
/// spec's minimum and maximum workers alive while work remains. The job folder is a run folder: <c>config.json</c> (the
/// spec), <c>metrics.jsonl</c> (progress, throughput, per-stage busy time and queue depth), <c>log.txt</c>,
/// <c>state.db</c>, <c>output/</c>, <c>quarantine/</c>, <c>workers/</c>, and <c>result.json</c> at the end.
/// <see cref="ResumeAsync"/> restarts a stopped or killed job where it stopped.
/// </summary>
public static class InferJob
{
    /// <summary>The job kind (run folder prefix and config's <c>kind</c>).</summary>
    public const string Kind = "infer";

    /// <summary>Runs a new job.</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the option.</exception>
    public static async Task<InferResult> RunAsync(InferJobOptions spec, IProgress<InferStatus>? progress = null,
        CancellationToken cancel = default, Action<string>? log = null)
    {
        spec.Check();
        var source = RecordSource.Open(spec);   // fails here, before a folder exists, on an unreadable input
        var launch = spec.RankLaunch;
        var mpi = launch.Launcher == Launcher.Mpi ? Jobs.MpiJobLauncher.Prepare(launch) : default;
        var slurm = launch.Launcher == Launcher.Slurm ? Jobs.SlurmJobLauncher.Prepare(launch) : null;
        var runs = launch.RunsDirectory;
        if (spec.JobName is { } name && File.Exists(Path.Combine(runs, name, InferLayout.StateFile)))
        {
            var saved = ReadSpec(Path.Combine(runs, name));
            if (!saved.SameLayout(spec))
                throw new ArgumentException(
                    $"the job folder '{name}' holds another job (input {saved.Input}, shards of {saved.ShardSize}): " +
                        $"choose another --job-name", nameof(spec));
            log?.Invoke($"{name} already holds this job: resuming it");
            return await ResumeAsync(Path.Combine(runs, name), progress, cancel, _ => spec, log);
        }
        using var run = spec.JobName is { } fixedName
            ? RunDirectory.CreateNamed(runs, fixedName, new InferConfig(Kind, spec))
            : RunDirectory.Create(runs, Kind, new InferConfig(Kind, spec));
        if (launch.Launcher == Launcher.Mpi) return await RunUnderMpiAsync(run, spec, mpi, progress, cancel, log);
        if (launch.Launcher == Launcher.Slurm) return await RunUnderSlurmAsync(
            run, spec, slurm!, progress, cancel, log);
        return await RunInFolderAsync(run, spec, source, progress, cancel, log);
    }

    /// <summary>
    /// One rank of a job started with <c>--launcher mpi</c> (<c>toolkit infer rank --job DIR</c>; the rank from hydra's
    /// <c>PMI_RANK</c>): rank 0 is the coordinator, listening on every interface with a token written to the job
    /// folder; every other rank waits for <c>coordinator.json</c> and works for it.
    /// </summary>
    public static async Task<int> RankAsync(string folder, CancellationToken cancel = default,
        Action<string>? log = null)
    {
        var rank = int.TryParse(Environment.GetEnvironmentVariable("PMI_RANK")
            ?? Environment.GetEnvironmentVariable("SLURM_PROCID"), out var r) ? r : 0;
        var spec = ReadSpec(folder);
        if (rank == 0)
        {
            var coordinator = spec with { Launch = spec.Launch with { Launcher = Launcher.External }, Bind = "0.0.0.0",
                Token = spec.Token ?? CoordinatorServer.NewToken() };
            using var run = RunDirectory.Reopen(folder);
            var result = await RunInFolderAsync(run, coordinator, RecordSource.Open(spec), null, cancel, log);
            return result.State == "completed" ? 0 : 1;
        }
        var file = Path.Combine(folder, InferLayout.CoordinatorFile);
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!File.Exists(file) || !File.Exists(Path.Combine(folder, "token")))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(
                $"rank {rank}: no coordinator appeared in {folder} within 2 minutes (see rank 0's output)");
            await Task.Delay(200, cancel);
        }
        var address = ToolkitJson.Read<CoordinatorAddress>(file);
        using var client = new GrpcCoordinator(address.Address, File.ReadAllText(Path.Combine(folder, "token")).Trim());
        var summary = await new InferenceWorker(client,
            $"{Environment.MachineName}-rank{rank}") { Log = log }.RunAsync(abort: cancel);
        return summary.Reason is "finished" or "drained" ? 0 : 1;
    }

    /// <summary>
    /// Submits the ranks as a Slurm job (sbatch of a script kept in <c>slurm/job.sbatch</c>) and follows it: status
    /// snapshots from the job's state once a second, the scheduler's state changes to the log. Inside an allocation the
    /// ranks are an srun step instead, followed like mpiexec. Cancelling runs scancel; the job can be resumed.
    /// </summary>
    private static async Task<InferResult> RunUnderSlurmAsync(RunDirectory run, InferJobOptions spec,
        Jobs.SlurmJobLauncher.Plan plan,
        IProgress<InferStatus>? progress, CancellationToken cancel, Action<string>? log)
    {
        if (plan.Mode == Jobs.SlurmSubmit.Srun)
            return await RunUnderMpiAsync(run, spec, (Jobs.SlurmClient.Require("srun"), ["--kill-on-bad-exit=0",
                .. Jobs.SlurmJobLauncher.ResourceArguments(spec.RankLaunch, plan.ExtraArguments), .. plan.Entry]),
                progress, cancel, log);
        PrepareForRanks(run);
        var states = new LogStatus(log);
        var resultFile = run.File("result.json");
        try
        {
            await Jobs.SlurmJobLauncher.SubmitAndFollowAsync(run, spec.RankLaunch, plan, Kind, RankVerb(run), states,
                () =>
                {
                    ReportWhileRanksRun(run, progress);
                },
                () => File.Exists(resultFile), cancel, killOnBadExit: false);
        }
        catch (Jobs.JobFailedException e) when (File.Exists(resultFile))
        {
            // The coordinator (task 0) wrote the job's result: that decides, as under mpiexec.
            run.Log($"warning: {e.Message}");
        }
        if (!File.Exists(resultFile))
            throw new Jobs.JobFailedException(
                $"the Slurm job completed before the coordinator (task 0) wrote its result; the job can be resumed. " +
                    $"Job folder: {run.Path}");
        progress?.Report(Status(run.Path));
        return ToolkitJson.Read<InferResult>(resultFile);
    }

    /// <summary>
    /// Before the ranks of a job (mpiexec or Slurm) start: the folder is a job folder at once (status works), and a
    /// resumed job's old coordinator files are gone.
    /// </summary>
    private static void PrepareForRanks(RunDirectory run)
    {
        using (new SqliteShardStore(run.File(InferLayout.StateFile))) { }
        foreach (var stale in new[] { InferLayout.CoordinatorFile, "token",
            "result.json" }) File.Delete(run.File(stale));
    }

    /// <summary>A status snapshot while the ranks run; none while rank 0 is still laying out the shards.</summary>
    private static void ReportWhileRanksRun(RunDirectory run, IProgress<InferStatus>? progress)
    {
        try { progress?.Report(Status(run.Path)); }
        catch (Exception e) when (
            e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException) { }
    }

    /// <summary>Slurm state changes as log lines.</summary>
    private sealed class LogStatus(Action<string>? log) : IProgress<Runs.MetricPoint>, IProgress<Jobs.JobStatus>
    {
        public void Report(Runs.MetricPoint value) { }

        public void Report(Jobs.JobStatus value) => log?.Invoke(value.Message);
    }

    /// <summary>Starts the ranks with mpiexec (or on the emulated cluster) and follows the job from its state until
    /// they exit.</summary>
    private static async Task<InferResult> RunUnderMpiAsync(RunDirectory run, InferJobOptions spec, (string File,
        IReadOnlyList<string> Arguments) launcher,
        IProgress<InferStatus>? progress, CancellationToken cancel, Action<string>? log)
    {
        PrepareForRanks(run);
        var arguments = (IReadOnlyList<string>)[.. launcher.Arguments, .. RankVerb(run)];
        run.Log($"launch: {launcher.File} {string.Join(' ', arguments)}");
        log?.Invoke($"launch: {launcher.File} {string.Join(' ', arguments)}");
        // srun ends its step on SIGTERM, on every node; a kill would only end the local process tree.
        var (exitCode, output) = await ChildProcess.RunLauncherAsync(launcher.File, arguments,
            run.File(Jobs.MpiJobLauncher.OutputFile), TimeSpan.FromMilliseconds(500),
            () => ReportWhileRanksRun(run, progress), gracefulStop: Path.GetFileName(launcher.File) == "srun", cancel);
        var resultFile = run.File("result.json");
        if (!File.Exists(resultFile))
            throw new Jobs.JobFailedException(
                $"the MPI job exited with code {exitCode} before the coordinator (rank 0) wrote its result; the job " +
                    $"can be resumed. " +
                $"Job folder: {run.Path}. Last output:\n{string.Join('\n', output.Split('\n').TakeLast(30))}");
        var result = ToolkitJson.Read<InferResult>(resultFile);
        progress?.Report(Status(run.Path));
        return result;
    }

    private static IReadOnlyList<string> RankVerb(RunDirectory run) =>
        ChildCommands.Of(ChildCommands.InferRank, new InferRankOptions { Job = run.Path });

    /// <summary>Resumes the job in <paramref name="folder"/>: committed shards stay done; the rest are
    /// redone.</summary>
    /// <param name="folder">The job folder.</param>
    /// <param name="progress">Receives status snapshots.</param>
    /// <param name="cancel">Stops the job (it can be resumed again).</param>
    /// <param name="change">Changes to the spec that do not change the shard layout (workers, replicas, lease,
    /// port...).</param>
    /// <param name="log">Receives log lines.</param>
    /// <exception cref="DirectoryNotFoundException">Not a job folder.</exception>
    public static async Task<InferResult> ResumeAsync(string folder, IProgress<InferStatus>? progress = null,
        CancellationToken cancel = default,
        Func<InferJobOptions, InferJobOptions>? change = null, Action<string>? log = null)
    {
        var spec = ReadSpec(folder);
        if (change is not null) spec = change(spec);
        spec.Check();
        var source = RecordSource.Open(spec);
        using var run = RunDirectory.Reopen(folder);
        run.Log("resumed");
        var launch = spec.RankLaunch;
        if (launch.Launcher == Launcher.Mpi)
            return await RunUnderMpiAsync(run, spec, Jobs.MpiJobLauncher.Prepare(launch), progress, cancel, log);
        if (launch.Launcher == Launcher.Slurm)
            return await RunUnderSlurmAsync(run, spec, Jobs.SlurmJobLauncher.Prepare(launch), progress, cancel, log);
        return await RunInFolderAsync(run, spec, source, progress, cancel, log);
    }

    /// <summary>The spec a job folder was started with.</summary>
    /// <exception cref="DirectoryNotFoundException">Not a batch-inference job folder.</exception>
    public static InferJobOptions ReadSpec(string folder)
    {
        var path = Path.Combine(folder, RunDirectory.ConfigFile);
        if (!File.Exists(path) || !File.Exists(Path.Combine(folder, InferLayout.StateFile)))
            throw new DirectoryNotFoundException(
                $"{folder} is not a batch-inference job folder (it needs {RunDirectory.ConfigFile} " +
                    $"and {InferLayout.StateFile}).");
        var config = ReadConfig(path);
        return config.Kind == Kind && config.Options is { } spec ? spec
            : throw new DirectoryNotFoundException($"{folder} holds a '{config.Kind}' run, not a batch-inference job.");
    }

    /// <summary>A job folder's config; a spec written before the Slurm settings became one group is migrated
    /// (<see cref="InferJobOptions.MigrateJson"/>).</summary>
    private static InferConfig ReadConfig(string path)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) as System.Text.Json.Nodes.JsonObject
            ?? throw new InvalidDataException($"{path} is not a JSON object");
        if (root["options"] is System.Text.Json.Nodes.JsonObject options) InferJobOptions.MigrateJson(options);
        return System.Text.Json.JsonSerializer.Deserialize<InferConfig>(root, ToolkitJson.Options)!;
    }

    /// <summary>Where the job in <paramref name="folder"/> stands, read from its state (works while it runs).</summary>
    /// <exception cref="InvalidOperationException">The coordinator has not laid out the shards yet.</exception>
    public static InferStatus Status(string folder) =>
        TryStatus(folder)
            ?? throw new InvalidOperationException($"{folder}: the coordinator has not laid out the shards yet");

    /// <summary>As <see cref="Status"/>, but null while the coordinator has created its state and not yet laid out the
    /// shards.</summary>
    public static InferStatus? TryStatus(string folder)
    {
        var spec = ReadSpec(folder);
        using var store = new SqliteShardStore(Path.Combine(folder, InferLayout.StateFile));
        var shards = store.Shards();
        if (shards.Count == 0) return null;
        var records = shards.Sum(s => s.Records);
        using var core = new CoordinatorCore(spec, folder, store, records);
        return core.Status();
    }

    private static async Task<InferResult> RunInFolderAsync(RunDirectory run, InferJobOptions spec,
        RecordSource source, IProgress<InferStatus>? progress,
        CancellationToken cancel, Action<string>? log)
    {
        void Log(string line)
        {
            run.Log(line);
            log?.Invoke(line);
        }
        var clock = Stopwatch.StartNew();
        using var core = new CoordinatorCore(spec, run.Path, new SqliteShardStore(run.File(InferLayout.StateFile)),
            source.Count, run);
        core.AdoptLeases();
        Log($"job {run.Id}: {source.Count} records in {core.Status().Shards} shards " +
            $"of {spec.ShardSize}; {core.DoneAtStart} records already done");
        CoordinatorServer? server = null;
        IWorkerPool? pool = null;
        var state = "completed";
        try
        {
            if (spec.Launch.Launcher != Launcher.InProcess)
            {
                var token = spec.Token ?? (spec.IsLoopback ? null : CoordinatorServer.NewToken());
                server = await CoordinatorServer.StartAsync(core, spec.Bind, spec.Port, token);
                ToolkitJson.Write(run.File(InferLayout.CoordinatorFile), new CoordinatorAddress(server.Address,
                    token is not null, Environment.ProcessId));
                if (token is not null)
                {
                    var tokenFile = run.File("token");
                    File.WriteAllText(tokenFile, token);
                    if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tokenFile,
                        UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
                Log($"coordinator listening on {server.Address}{(token is null ? "" : " (token required; see the job " +
                    "folder's token file)")}");
            }
            pool = spec.Launch.Launcher switch
            {
                Launcher.InProcess => new InProcessPool(core, log),
                Launcher.Local => new ProcessPool(core, run.Path, server!.Address, server.Token, Log),
                _ => null,
            };
            var scaled = Stopwatch.StartNew();
            var lastMetrics = TimeSpan.Zero;
            var status = core.Status();
            for (var i = 0; pool is not null && i < Math.Min(spec.Workers,
                status.Shards - status.ShardsDone - status.Failed.Count); i++) pool.Start();
            while (true)
            {
                core.ExpireLeases();
                pool?.Reap();
                status = core.Status();
                if (clock.Elapsed - lastMetrics >= TimeSpan.FromSeconds(1) || status.Finished)
                {
                    core.WriteMetrics(status);
                    lastMetrics = clock.Elapsed;
                }
                progress?.Report(status);
                if (status.Finished) break;
                if (pool is not null) Autoscaler.Step(spec, status, pool, scaled, Log);
                try { await Task.Delay(TimeSpan.FromMilliseconds(250), cancel); }
                catch (OperationCanceledException) { state = "cancelled"; break; }
            }
        }
        finally
        {
            if (pool is not null)
            {
                // Finished: workers leave by themselves (those still there after 30 s are asked to). Cancelled: they
                // drain what
                // they hold (SIGTERM), then are killed.
                await pool.StopAsync(TimeSpan.FromSeconds(state == "cancelled" ? 15 : 30),
                    leaving: TimeSpan.FromSeconds(state == "cancelled" ? 0 : 30));
                await pool.DisposeAsync();
            }
            if (server is not null) await server.DisposeAsync();
        }
        var final = core.Status();
        if (final.Finished)
        {
            var removed = InferOutput.RemoveUncommitted(run.Path);
            if (removed > 0) Log(
                $"removed {removed} part file(s) written by workers whose lease had expired (never committed)");
        }
        if (state == "completed" && final.Failed.Count > 0) state = "completed with failures";
        var result = new InferResult(run.Id, run.Path, state, final.Records, final.RecordsDone - final.Quarantined,
            final.Quarantined, final.Shards, final.ShardsDone,
            final.Failed, clock.Elapsed.TotalSeconds,
                clock.Elapsed.TotalSeconds > 0
                    ? (final.RecordsDone - core.DoneAtStart) / clock.Elapsed.TotalSeconds : 0,
            pool?.Started ?? final.Workers.Count(w => w.Joined >= core.Started), pool?.Died ?? 0,
                final.ReplicaRestarts, final.Rejected, final.Bottleneck, final.Stages, final.Workers);
        ToolkitJson.Write(run.File("result.json"), result);
        Log($"{state}: {result.OutputRecords} records written, {result.Quarantined} " +
            $"quarantined, {result.Failed.Count} shard(s) failed, {result.RecordsPerSecond:F1} records/s");
        return result;
    }
}
