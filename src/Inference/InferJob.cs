using System.Diagnostics;
using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Inference;

/// <summary>
/// Runs a batch-inference job: the coordinator (its state in the job folder's SQLite file), its gRPC service
/// unless the workers are in this process, the workers (child processes by default), and an autoscaler that
/// keeps between the spec's minimum and maximum workers alive while work remains. The job folder is a run
/// folder: <c>config.json</c> (the spec), <c>metrics.jsonl</c> (progress, throughput, per-stage busy time and
/// queue depth), <c>log.txt</c>, <c>state.db</c>, <c>output/</c>, <c>quarantine/</c>, <c>workers/</c>, and
/// <c>result.json</c> at the end. <see cref="ResumeAsync"/> restarts a stopped or killed job where it stopped.
/// </summary>
public static class InferJob
{
    /// <summary>The job kind (run folder prefix and config's <c>kind</c>).</summary>
    public const string Kind = "infer";

    /// <summary>Runs a new job.</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the option.</exception>
    public static async Task<InferResult> RunAsync(InferJobOptions spec, IProgress<InferStatus>? progress = null, CancellationToken cancel = default, Action<string>? log = null)
    {
        spec.Check();
        var source = RecordSource.Open(spec);   // fails here, before a folder exists, on an unreadable input
        using var run = RunDirectory.Create(spec.RunsDirectory, Kind, new InferConfig(Kind, spec));
        return await RunInFolderAsync(run, spec, source, progress, cancel, log);
    }

    /// <summary>Resumes the job in <paramref name="folder"/>: committed shards stay done; the rest are redone.</summary>
    /// <param name="folder">The job folder.</param>
    /// <param name="progress">Receives status snapshots.</param>
    /// <param name="cancel">Stops the job (it can be resumed again).</param>
    /// <param name="change">Changes to the spec that do not change the shard layout (workers, replicas, lease, port...).</param>
    /// <param name="log">Receives log lines.</param>
    /// <exception cref="DirectoryNotFoundException">Not a job folder.</exception>
    public static async Task<InferResult> ResumeAsync(string folder, IProgress<InferStatus>? progress = null, CancellationToken cancel = default,
        Func<InferJobOptions, InferJobOptions>? change = null, Action<string>? log = null)
    {
        var spec = ReadSpec(folder);
        if (change is not null) spec = change(spec);
        spec.Check();
        var source = RecordSource.Open(spec);
        using var run = RunDirectory.Reopen(folder);
        run.Log("resumed");
        return await RunInFolderAsync(run, spec, source, progress, cancel, log);
    }

    /// <summary>The spec a job folder was started with.</summary>
    /// <exception cref="DirectoryNotFoundException">Not a batch-inference job folder.</exception>
    public static InferJobOptions ReadSpec(string folder)
    {
        var path = Path.Combine(folder, RunDirectory.ConfigFile);
        if (!File.Exists(path) || !File.Exists(Path.Combine(folder, InferLayout.StateFile)))
            throw new DirectoryNotFoundException($"{folder} is not a batch-inference job folder (it needs {RunDirectory.ConfigFile} and {InferLayout.StateFile}).");
        var config = ToolkitJson.Read<InferConfig>(path);
        return config.Kind == Kind && config.Options is { } spec ? spec
            : throw new DirectoryNotFoundException($"{folder} holds a '{config.Kind}' run, not a batch-inference job.");
    }

    /// <summary>Where the job in <paramref name="folder"/> stands, read from its state (works while it runs).</summary>
    public static InferStatus Status(string folder)
    {
        var spec = ReadSpec(folder);
        using var store = new SqliteShardStore(Path.Combine(folder, InferLayout.StateFile));
        var records = store.Shards().Sum(s => s.Records);
        using var core = new CoordinatorCore(spec, folder, store, records);
        return core.Status();
    }

    private static async Task<InferResult> RunInFolderAsync(RunDirectory run, InferJobOptions spec, RecordSource source, IProgress<InferStatus>? progress,
        CancellationToken cancel, Action<string>? log)
    {
        void Log(string line)
        {
            run.Log(line);
            log?.Invoke(line);
        }
        var clock = Stopwatch.StartNew();
        using var core = new CoordinatorCore(spec, run.Path, new SqliteShardStore(run.File(InferLayout.StateFile)), source.Count, run);
        Log($"job {run.Id}: {source.Count} records in {core.Status().Shards} shards of {spec.ShardSize}; {core.DoneAtStart} records already done");
        CoordinatorServer? server = null;
        IWorkerPool? pool = null;
        var state = "completed";
        try
        {
            if (spec.Launcher != WorkerLauncher.InProcess)
            {
                var token = spec.Token ?? (spec.IsLoopback ? null : CoordinatorServer.NewToken());
                server = await CoordinatorServer.StartAsync(core, spec.Bind, spec.Port, token);
                ToolkitJson.Write(run.File(InferLayout.CoordinatorFile), new CoordinatorAddress(server.Address, token is not null, Environment.ProcessId));
                if (token is not null)
                {
                    var tokenFile = run.File("token");
                    File.WriteAllText(tokenFile, token);
                    if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
                Log($"coordinator listening on {server.Address}{(token is null ? "" : " (token required; see the job folder's token file)")}");
            }
            pool = spec.Launcher switch
            {
                WorkerLauncher.InProcess => new InProcessPool(core, log),
                WorkerLauncher.Local => new ProcessPool(core, run.Path, server!.Address, server.Token, Log),
                _ => null,
            };
            var scaled = Stopwatch.StartNew();
            var lastMetrics = TimeSpan.Zero;
            var status = core.Status();
            for (var i = 0; pool is not null && i < Math.Min(spec.Workers, status.Shards - status.ShardsDone - status.Failed.Count); i++) pool.Start();
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
                if (pool is not null) Autoscale(spec, status, pool, scaled, Log);
                try { await Task.Delay(TimeSpan.FromMilliseconds(250), cancel); }
                catch (OperationCanceledException) { state = "cancelled"; break; }
            }
        }
        finally
        {
            if (pool is not null)
            {
                // Finished: workers leave by themselves. Cancelled: they drain what they hold (SIGTERM), then are killed.
                await pool.StopAsync(TimeSpan.FromSeconds(state == "cancelled" ? 15 : 30));
                await pool.DisposeAsync();
            }
            if (server is not null) await server.DisposeAsync();
        }
        var final = core.Status();
        if (state == "completed" && final.Failed.Count > 0) state = "completed with failures";
        var result = new InferResult(run.Id, run.Path, state, final.Records, final.RecordsDone - final.Quarantined, final.Quarantined, final.Shards, final.ShardsDone,
            final.Failed, clock.Elapsed.TotalSeconds, clock.Elapsed.TotalSeconds > 0 ? (final.RecordsDone - core.DoneAtStart) / clock.Elapsed.TotalSeconds : 0,
            pool?.Started ?? 0, pool?.Died ?? 0, final.ReplicaRestarts, final.Rejected, final.Bottleneck, final.Stages, final.Workers);
        ToolkitJson.Write(run.File("result.json"), result);
        Log($"{state}: {result.OutputRecords} records written, {result.Quarantined} quarantined, {result.Failed.Count} shard(s) failed, {result.RecordsPerSecond:F1} records/s");
        return result;
    }

    /// <summary>
    /// The elastic controller: replace workers that died while fewer than the minimum run; add one (up to the
    /// maximum, at most every 10 s) while the backlog at the measured rate would take more than 30 s; never more
    /// workers than shards left. Workers leave by themselves when no work is left.
    /// </summary>
    private static void Autoscale(InferJobOptions spec, InferStatus status, IWorkerPool pool, Stopwatch sinceScale, Action<string> log)
    {
        var left = status.Shards - status.ShardsDone - status.Failed.Count;
        var live = pool.Live;
        var target = Math.Max(live, Math.Max(spec.MinWorkers, 1));
        if (live < spec.WorkerCeiling && sinceScale.Elapsed > TimeSpan.FromSeconds(10) && status.EtaSeconds is > 30) target = live + 1;
        target = Math.Min(Math.Min(target, spec.WorkerCeiling), left);
        if (target > live)
        {
            log($"autoscaler: {live} -> {target} worker(s) ({left} shards left, ETA {status.EtaSeconds?.ToString("F0", System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"} s)");
            while (pool.Live < target) pool.Start();
            sinceScale.Restart();
        }
    }
}

/// <summary>A job folder's <c>config.json</c>.</summary>
public sealed record InferConfig(string Kind, InferJobOptions? Options);

/// <summary>A job folder's <c>coordinator.json</c>: where its coordinator listens.</summary>
public sealed record CoordinatorAddress(string Address, bool TokenRequired, int ProcessId);

/// <summary>The outcome of a batch-inference job.</summary>
public sealed record InferResult(string RunId, string JobFolder, string State, long Records, long OutputRecords, long Quarantined, int Shards, int ShardsDone,
    IReadOnlyList<FailedShard> Failed, double Seconds, double RecordsPerSecond, int WorkersStarted, int WorkersDied, int ReplicaRestarts, int Rejected,
    string? Bottleneck, IReadOnlyList<StageReport> Stages, IReadOnlyList<WorkerInfo> Workers) : IFacts
{
    /// <inheritdoc/>
    public string Title => $"batch inference {RunId}: {State}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts()
    {
        var facts = new List<(string, string)>
        {
            ("job folder", JobFolder),
            ("records", $"{Records:N0}: {OutputRecords:N0} written, {Quarantined:N0} quarantined, {Records - OutputRecords - Quarantined:N0} not done"),
            ("shards", $"{ShardsDone}/{Shards} done, {Failed.Count} failed"),
            ("time", $"{Seconds:F1} s, {RecordsPerSecond:F1} records/s"),
            ("workers", $"{WorkersStarted} started, {WorkersDied} died; replica restarts {ReplicaRestarts}; rejected calls {Rejected}"),
            ("bottleneck", Bottleneck ?? "(no stage reports)"),
        };
        facts.AddRange(Workers.Where(w => w.Records > 0).Select(w => ($"worker {w.Id}", $"{w.Records:N0} records, {w.Throughput:F1} records/s{(w.Left is null ? "" : $", {w.Left}")}")));
        facts.AddRange(Failed.Select(f => ($"failed shard {f.Shard}", $"records {f.FirstRecord}..{f.FirstRecord + f.Records - 1}, {f.Attempts} attempts: {f.Reason}")));
        return facts;
    }
}
