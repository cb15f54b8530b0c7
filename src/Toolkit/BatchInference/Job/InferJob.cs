using System.Diagnostics;
using System.Text.Json;
using Toolkit.Jobs;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// A batch-inference job, run by the <see cref="JobHost"/> as a coordinated job: the coordinator (its state in the
/// job folder's SQLite file), its service for workers in other processes, the workers (child processes by default, or
/// the other ranks under mpi and slurm), and an autoscaler that keeps between the spec's minimum and maximum workers
/// alive while work remains. The job folder is a run folder: <c>config.json</c> (the spec, never the token),
/// <c>metrics.jsonl</c> (progress, throughput, per-stage busy time and queue depth), <c>log.txt</c>, <c>state.db</c>
/// (opened by the coordinator only), <c>status.json</c> (its snapshot, for readers), <c>coordinator.lock</c>,
/// <c>coordinator.json</c>, <c>token</c> (0600), <c>tls.key</c> and <c>tls.crt</c> beyond loopback, <c>output/</c>
/// (with <c>manifest.json</c> and <c>_SUCCESS</c> at the end), <c>quarantine/</c>, <c>workers/</c>, and
/// <c>result.json</c> at the end. <see cref="ResumeAsync"/> restarts a stopped or killed job where it stopped.
/// </summary>
public sealed class InferJob : CoordinatedJob<InferJobOptions, InferResult>
{
    /// <summary>The job kind (run folder prefix and config's <c>kind</c>).</summary>
    public const string JobKind = "infer";

    private readonly IProgress<InferStatus>? _progress;
    private readonly Action<string>? _log;

    /// <summary>A job that reports nothing but its log, to standard error (a rank process).</summary>
    public InferJob() : this(null, Console.Error.WriteLine) { }

    /// <summary>A job that reports status snapshots to <paramref name="progress"/> and log lines to
    /// <paramref name="log"/>.</summary>
    public InferJob(IProgress<InferStatus>? progress, Action<string>? log) => (_progress, _log) = (progress, log);

    /// <inheritdoc/>
    public override string Kind => JobKind;

    /// <summary>Runs a new job (or resumes the one its <c>--job-name</c> folder holds).</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the option.</exception>
    public static async Task<InferResult> RunAsync(InferJobOptions spec, IProgress<InferStatus>? progress = null,
        CancellationToken cancel = default, Action<string>? log = null)
    {
        var runs = spec.Launch.RunsDirectory;
        // the output folder as this process sees it, so that a resume from elsewhere finds the same one
        if (!string.IsNullOrWhiteSpace(spec.Data.Output))
            spec = spec with { Data = spec.Data with { Output = Path.GetFullPath(spec.Data.Output) } };
        if (spec.JobName is { } name && File.Exists(Path.Combine(runs, name, InferLayout.StateFile)))
        {
            spec.Check();
            var saved = ReadSpec(Path.Combine(runs, name));
            if (!saved.SameLayout(spec))
                throw new ArgumentException(
                    $"the job folder '{name}' holds another job (input {saved.Data.Input}, shards of " +
                        $"{saved.Scheduling.ShardSize}): choose another --job-name", nameof(spec));
            log?.Invoke($"{name} already holds this job: resuming it");
            return await ResumeAsync(Path.Combine(runs, name), progress, cancel, _ => spec, log);
        }
        // refused before a job folder is made for it
        if (spec.Data.Output is { } folder) OutputContract.CheckEmpty(folder);
        return await JobHost.RunAsync(new InferJob(progress, log), spec, cancel);
    }

    /// <inheritdoc/>
    public override string? FolderName(InferJobOptions options) => options.JobName;

    /// <inheritdoc/>
    public override LaunchOptions RankLaunch(InferJobOptions options) => options.RankLaunch;

    /// <summary>Opens the input: an unreadable one fails here, before a folder exists.</summary>
    public override void Prepare(InferJobOptions options) => RecordSource.Open(options);

    /// <inheritdoc/>
    public override bool Succeeded(InferResult result) => result.State == "completed";

    /// <inheritdoc/>
    public override int MaxRelaunches(InferJobOptions options) => options.Scheduling.MaxRestarts;

    /// <inheritdoc/>
    public override void OnStatus(JobStatus status) => _log?.Invoke(status.Message);

    /// <summary>The spec as written, migrated from older layouts (<see cref="InferJobOptions.MigrateJson"/>).</summary>
    public override InferJobOptions ReadOptions(string runPath, JsonElement options) => ReadSpec(runPath);

    /// <summary>
    /// Before the ranks of a job (mpiexec or Slurm) start: the folder is a job folder at once (status works), and a
    /// resumed job's old coordinator files are gone.
    /// </summary>
    public override void BeforeRanks(string runPath)
    {
        using (new SqliteShardStore(Path.Combine(runPath, InferLayout.StateFile))) { }
        foreach (var stale in new[] { InferLayout.CoordinatorFile, InferLayout.TokenFile })
            File.Delete(Path.Combine(runPath, stale));
    }

    /// <summary>A status snapshot while the ranks run; none while rank 0 is still laying out the shards.</summary>
    public override void WhileRanksRun(string runPath)
    {
        try
        {
            if (_progress is not null && TryStatus(runPath) is { } status) _progress.Report(status);
        }
        catch (Exception e) when (
            e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException) { }
    }

    /// <summary>A worker rank: waits for the coordinator (rank 0) to write its address and token, then runs a worker
    /// for it as a child process, started again if it dies (<see cref="RankWorker"/>).</summary>
    public override async Task<bool> WorkAsync(WorkerContext<InferJobOptions> context)
    {
        var (folder, rank, cancel) = (context.RunPath, context.Rank, context.CancellationToken);
        var file = Path.Combine(folder, InferLayout.CoordinatorFile);
        var tokenFile = Path.Combine(folder, InferLayout.TokenFile);
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!File.Exists(file) || !File.Exists(tokenFile))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(
                $"rank {rank}: no coordinator appeared in {folder} within 2 minutes (see rank 0's output)");
            await Task.Delay(200, cancel);
        }
        return await RankWorker.RunAsync(folder, rank, ToolkitJson.Read<CoordinatorAddress>(file), _log, cancel);
    }

    /// <summary>Resumes the job in <paramref name="folder"/>: committed shards stay done; the rest are
    /// redone.</summary>
    /// <param name="folder">The job folder.</param>
    /// <param name="progress">Receives status snapshots.</param>
    /// <param name="cancel">Stops the job (it can be resumed again).</param>
    /// <param name="change">Changes to the spec that do not change the shard layout (workers, replicas, lease,
    /// port...).</param>
    /// <param name="log">Receives log lines.</param>
    /// <exception cref="DirectoryNotFoundException">Not a job folder.</exception>
    public static Task<InferResult> ResumeAsync(string folder, IProgress<InferStatus>? progress = null,
        CancellationToken cancel = default,
        Func<InferJobOptions, InferJobOptions>? change = null, Action<string>? log = null)
    {
        var spec = ReadSpec(folder);
        if (change is not null) spec = change(spec);
        return JobHost.ResumeAsync(new InferJob(progress, log), folder, spec, cancel);
    }

    /// <summary>
    /// Puts a stopped job's FAILED shards (<paramref name="failed"/>) and the shards that quarantined records
    /// (<paramref name="quarantined"/>, redone whole) back to work, then resumes it: every record is still in the
    /// output exactly once, since a redone shard's old parts are removed as the job resumes.
    /// </summary>
    /// <exception cref="ArgumentException">Neither is asked for.</exception>
    /// <exception cref="Jobs.JobFailedException">A coordinator is running on the folder.</exception>
    public static async Task<InferResult> RetryAsync(string folder, bool failed, bool quarantined,
        IProgress<InferStatus>? progress = null, CancellationToken cancel = default, Action<string>? log = null)
    {
        if (!failed && !quarantined)
            throw new ArgumentException("say what to retry: --failed, --quarantined or both", nameof(failed));
        _ = ReadSpec(folder);
        int again;
        using (CoordinatorLock.Acquire(folder, log))
        using (var store = new SqliteShardStore(Path.Combine(folder, InferLayout.StateFile)))
            again = store.Retry(failed, quarantined);
        File.Delete(Path.Combine(folder, InferLayout.StatusFile));   // stale until the coordinator writes it
        log?.Invoke($"{again} shard(s) back to work");
        return await ResumeAsync(folder, progress, cancel, log: log);
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
        return config.Kind == JobKind && config.Options is { } spec ? spec
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

    /// <summary>
    /// As <see cref="Status"/>, but null while the coordinator has not yet laid out the shards. It reads the snapshot
    /// the coordinator writes every second (<c>status.json</c>), never its SQLite state, which may sit on a network
    /// file system; only a folder that has no snapshot and no coordinator (written before snapshots existed) is read
    /// from its state.
    /// </summary>
    public static InferStatus? TryStatus(string folder)
    {
        var spec = ReadSpec(folder);
        var snapshot = Path.Combine(folder, InferLayout.StatusFile);
        if (File.Exists(snapshot)) return ToolkitJson.Read<InferStatus>(snapshot);
        if (File.Exists(Path.Combine(folder, InferLayout.LockFile))) return null;
        using var store = new SqliteShardStore(Path.Combine(folder, InferLayout.StateFile));
        var shards = store.Shards();
        if (shards.Count == 0) return null;
        var records = shards.Sum(s => s.Records);
        using var core = new CoordinatorCore(spec, folder, store, records);
        return core.Status();
    }

    /// <summary>
    /// The coordinator: lays out (or adopts) the shards, serves workers in other processes, starts and scales its own
    /// workers unless they are the job's ranks, and reports status until every shard is done, failed or the job is
    /// cancelled. When the workers are ranks it listens on every interface with a token written to the job folder.
    /// </summary>
    public override async Task<InferResult> CoordinateAsync(CoordinatorContext<InferJobOptions> context)
    {
        var (spec, run, cancel) = (context.Options, context.Run, context.CancellationToken);
        if (context.WorkersAreRanks)
            spec = spec with {
                Launch = spec.Launch with { Launcher = Launcher.External },
                Service = spec.Service with { Bind = "0.0.0.0",
                    Token = spec.Service.Token ?? CoordinatorTransports.NewToken() },
            };
        var source = RecordSource.Open(spec);
        var progress = _progress;
        void Log(string line)
        {
            run.Log(line);
            _log?.Invoke(line);
        }
        var clock = Stopwatch.StartNew();
        using var exclusive = CoordinatorLock.Acquire(run.Path, Log);
        OutputContract.Link(run.Path, spec.Data.Output);
        using var core = new CoordinatorCore(spec, run.Path, new SqliteShardStore(run.File(InferLayout.StateFile)),
            source.Count, run, source: source);
        core.AdoptLeases();
        if (OutputContract.Reopen(run.Path) is > 0 and var stale)
            Log($"removed {stale} part or temporary file(s) that no commit names");
        Log($"job {run.Id}: {source.Count} records in {core.Status().Shards} shards " +
            $"of {spec.Scheduling.ShardSize}; {core.DoneAtStart} records already done");
        ICoordinatorEndpoint? server = null;
        System.Security.Cryptography.X509Certificates.X509Certificate2? certificate = null;
        IWorkerPool? pool = null;
        var state = "completed";
        try
        {
            if (spec.Launch.Launcher != Launcher.InProcess)
            {
                // Every listener needs the token, loopback included: any local user can reach loopback.
                var token = spec.Service.Token ?? CoordinatorTransports.TokenFromEnvironment()
                    ?? CoordinatorTransports.NewToken();
                AtomicFile.WriteSecret(run.File(InferLayout.TokenFile), System.Text.Encoding.UTF8.GetBytes(token));
                certificate = spec.Service.UsesTls ? CoordinatorTls.Create(run.Path, Environment.MachineName) : null;
                server = await CoordinatorTransports.Find().ServeAsync(core, spec.Service.Bind, spec.Service.Port,
                    token, certificate);
                ToolkitJson.Write(run.File(InferLayout.CoordinatorFile), new CoordinatorAddress(server.Address,
                    server.Fingerprint, Environment.ProcessId));
                Log($"coordinator listening on {server.Address} (token required: the job folder's " +
                    $"{InferLayout.TokenFile} file, readable by its owner only" +
                    (server.Fingerprint is { } pin ? $"; TLS certificate fingerprint {pin})" : ")"));
                if (!spec.Service.IsLoopback && !spec.Service.UsesTls)
                    Log($"warning: --insecure: calls to {server.Address} travel in cleartext, token included");
            }
            pool = spec.Launch.Launcher switch
            {
                Launcher.InProcess => new InProcessPool(core, _log),
                Launcher.Local => new ProcessPool(core, run.Path, server!, Log),
                _ => null,
            };
            var scaled = Stopwatch.StartNew();
            var lastMetrics = TimeSpan.Zero;
            var status = core.Status();
            for (var i = 0; pool is not null && i < Math.Min(spec.Scheduling.Workers,
                status.Shards - status.ShardsDone - status.Failed.Count); i++) pool.Start();
            while (true)
            {
                core.ExpireLeases();
                pool?.Reap();
                status = core.Status();
                if (clock.Elapsed - lastMetrics >= TimeSpan.FromSeconds(1) || status.Finished)
                {
                    core.WriteMetrics(status);
                    WriteSnapshot(run.Path, status);
                    lastMetrics = clock.Elapsed;
                }
                progress?.Report(status);
                if (status.Finished) break;
                if (pool?.Failure is { } failure) throw new JobFailedException(failure);
                if (core.FullDisk is { } full) throw new JobFailedException(
                    $"{Path.Combine(run.Path, InferLayout.OutputFolder)} is full ({full}); nothing partial was " +
                    $"committed: free space, then toolkit infer resume {run.Path}");
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
                // drain what they hold (SIGTERM), then are killed.
                await pool.StopAsync(TimeSpan.FromSeconds(state == "cancelled" ? 15 : 30),
                    leaving: TimeSpan.FromSeconds(state == "cancelled" ? 0 : 30));
                await pool.DisposeAsync();
            }
            if (server is not null) await server.DisposeAsync();
            certificate?.Dispose();
        }
        var final = core.Status();
        WriteSnapshot(run.Path, final);
        if (final.Finished)
        {
            var removed = OutputContract.Tidy(run.Path);
            if (removed > 0) Log(
                $"removed {removed} part or temporary file(s) written by workers whose lease had expired");
            var manifest = OutputContract.Seal(run.Path, run.Id, final.Failed);
            Log($"output/{OutputContract.ManifestFile}: {manifest.Parts.Count} parts, {manifest.Records} records" +
                (final.Failed.Count == 0 ? $"; output/{OutputContract.SuccessFile} written" : ""));
        }
        if (state == "completed" && final.Failed.Count > 0) state = "completed with failures";
        var result = new InferResult(run.Id, run.Path, state, final.Records, final.RecordsDone - final.Quarantined,
            final.Quarantined, final.Shards, final.ShardsDone,
            final.Failed, clock.Elapsed.TotalSeconds,
                clock.Elapsed.TotalSeconds > 0
                    ? (final.RecordsDone - core.DoneAtStart) / clock.Elapsed.TotalSeconds : 0,
            pool?.Started ?? final.Workers.Count(w => w.Joined >= core.Started), pool?.Died ?? 0,
                final.ReplicaRestarts, final.Rejected, final.Bottleneck, final.Stages, final.Workers);
        Log($"{state}: {result.OutputRecords} records written, {result.Quarantined} " +
            $"quarantined, {result.Failed.Count} shard(s) failed, {result.RecordsPerSecond:F1} records/s");
        return result;
    }

    /// <summary>Replaces the folder's status snapshot (what status readers read) atomically.</summary>
    private static void WriteSnapshot(string folder, InferStatus status) =>
        AtomicFile.Write(Path.Combine(folder, InferLayout.StatusFile),
            stream => System.Text.Json.JsonSerializer.Serialize(stream, status, ToolkitJson.Options), "coordinator");
}
