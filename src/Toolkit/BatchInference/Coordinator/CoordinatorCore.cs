using System.Collections.Concurrent;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// AntBatchInfer's stateful data-sharding service: hands out shard leases, renews them on heartbeats, records commits,
/// re-queues the shards of workers that stop heartbeating, and keeps every change in the job folder's SQLite store, so
/// a coordinator killed and restarted on the same folder resumes where it stopped and never redoes a committed shard.
/// Lease grants grow with a worker's measured throughput: a fast worker gets several shards per call (about
/// <see cref="TargetLeaseWork"/> of work), a new or slow one gets one. Shards shrink to it too
/// (<see cref="InferSchedulingOptions.ShardSeconds"/>): a shard is split at lease time when the worker would take
/// longer than that at its measured rate, or when it holds more than the waiting records' share per active worker (the
/// end of the job); neither piece is smaller than one batch. A split moves only records of a waiting shard, so
/// exactly-once is unaffected.
/// </summary>
internal sealed partial class CoordinatorCore : ICoordinator, IDisposable
{
    /// <summary>How much work (at the worker's measured rate) one grant aims at.</summary>
    public static readonly TimeSpan TargetLeaseWork = TimeSpan.FromSeconds(5);

    private readonly IShardStore _store;
    private readonly RunDirectory? _run;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, WorkerInfo> _workers = new();
    private readonly ConcurrentDictionary<string, WorkerReport> _reports = new();
    private readonly string _specJson;
    private readonly HashSet<long> _inherited;
    private readonly RecordSource? _source;
    private readonly ConcurrentDictionary<string, (long Items, DateTimeOffset Since)> _progress = new();
    private readonly HashSet<string> _stalled = [], _condemned = [];

    /// <summary>A coordinator for <paramref name="spec"/> over <paramref name="store"/>, the job folder
    /// <paramref name="jobFolder"/>.</summary>
    /// <param name="spec">The job.</param>
    /// <param name="jobFolder">Where outputs go (workers are told).</param>
    /// <param name="store">The durable state; initialised with the input's record count if new.</param>
    /// <param name="records">The input's record count.</param>
    /// <param name="run">The run folder for metrics and the log, or null.</param>
    /// <param name="clock">Time (tests pass a fake one).</param>
    /// <param name="source">The input, when this coordinator serves the job: a shard whose worker dies is then halved
    /// until a record that kills workers is alone, and that record is quarantined (a reader passes null).</param>
    public CoordinatorCore(InferJobOptions spec, string jobFolder, IShardStore store, long records,
        RunDirectory? run = null, TimeProvider? clock = null, RecordSource? source = null)
    {
        (Spec, JobFolder, _store, _run, _clock, _source) = (spec, Path.GetFullPath(jobFolder), store, run,
            clock ?? TimeProvider.System, source);
        Records = records;
        _specJson = System.Text.Json.JsonSerializer.Serialize(spec, ToolkitJson.Compact);
        _store.Initialize(records, spec.Scheduling.ShardSize);
        foreach (var w in _store.Workers()) _workers[w.Id] = w;
        // Leases granted before a restart stay valid (their workers may reconnect, on a fixed port, and commit); if
        // they expire instead, the coordinator's failure is to blame, not the shard's: no attempt is charged.
        _inherited = [.. _store.Shards().Where(s => s.State == ShardState.Leased).Select(s => s.Id)];
        Started = _clock.GetUtcNow();
        DoneAtStart = Status().RecordsDone;
    }

    /// <summary>The job.</summary>
    public InferJobOptions Spec { get; }

    /// <summary>The job folder.</summary>
    public string JobFolder { get; }

    /// <summary>Input records.</summary>
    public long Records { get; }

    /// <summary>When this coordinator (re)started.</summary>
    public DateTimeOffset Started { get; }

    /// <summary>Records already done when this coordinator started (a resumed job).</summary>
    public long DoneAtStart { get; }

    /// <summary>Workers rejected (bad token) or calls from unknown workers refused.</summary>
    public int Rejected => _rejected;
    private int _rejected;

    /// <summary>Counts a rejected worker (the RPC layer calls it; the reason is logged).</summary>
    public void Reject(string reason)
    {
        Interlocked.Increment(ref _rejected);
        _run?.Log($"rejected: {reason}");
    }

    /// <inheritdoc/>
    public Task<WorkerJoin> JoinAsync(WorkerHello hello, CancellationToken cancel = default)
    {
        var now = _clock.GetUtcNow();
        var info = new WorkerInfo(hello.Worker, hello.Host, now, now, 0, 0, 0, null);
        _workers[hello.Worker] = info;
        lock (_stalled) _condemned.Remove(hello.Worker);   // a new process under the same name
        _progress.TryRemove(hello.Worker, out _);
        _store.SaveWorker(info);
        _run?.Log($"worker {hello.Worker} joined from {hello.Host} (pid {hello.ProcessId})");
        return Task.FromResult(new WorkerJoin(_specJson, JobFolder));
    }

    /// <inheritdoc/>
    public Task<LeaseGrant> LeaseAsync(string worker, int maxShards, CancellationToken cancel = default)
    {
        var now = Seen(worker);
        ExpireLeases(now);
        var throughput = _workers.TryGetValue(worker, out var w) ? w.Throughput : 0;
        var grant = Math.Clamp((int)(throughput * TargetLeaseWork.TotalSeconds / Spec.Scheduling.ShardSize), 1,
            Math.Max(1, maxShards));
        var limit = ShardLimit(throughput, now);
        var leases = new List<ShardLease>();
        // A shard that failed before (its worker may have died of one of its records) goes to a worker that holds
        // nothing else, alone: if that worker dies too, the shard is to blame, not a neighbour.
        var held = _source is null ? [] : _store.HeldBy(worker);
        var alone = held.Count == 0;
        while (leases.Count < grant && !held.Any(h => h.Attempts > 0) && !Condemned(worker)
            && _store.TryLease(worker, Spec.Scheduling.Lease, now, limit, minRecords: Spec.Models.BatchSize,
                retried: _source is null || (alone && leases.Count == 0)) is { } lease)
        {
            lock (_inherited) _inherited.Remove(lease.Shard.Id);
            leases.Add(lease);
            if (_source is not null && lease.Shard.Attempts > 0) break;
        }
        var finished = leases.Count == 0 && IsFinished();
        return Task.FromResult(new LeaseGrant(leases, finished));
    }

    /// <summary>
    /// The most records a shard leased to a worker of this measured rate may hold: its rate times the target seconds,
    /// and no more than the waiting records' share per active worker (seen within a lease); at least one batch.
    /// Unlimited while the rate is unknown (a worker's first shard) or when adaptive shards are off.
    /// </summary>
    private long ShardLimit(double throughput, DateTimeOffset now)
    {
        if (Spec.Scheduling.ShardSeconds <= 0 || throughput <= 0) return long.MaxValue;
        // a killed worker never says goodbye
        var active = Math.Max(1,
            _workers.Values.Count(w => w.Left is null && now - w.LastSeen < Spec.Scheduling.Lease));
        var share = (long)Math.Ceiling(_store.WaitingRecords() / (double)active);
        var byRate = (long)Math.Min(long.MaxValue / 2, throughput * Spec.Scheduling.ShardSeconds);
        return Math.Max(Spec.Models.BatchSize, Math.Min(byRate, share));
    }

    /// <inheritdoc/>
    public Task<IReadOnlyList<bool>> HeartbeatAsync(string worker, IReadOnlyList<HeldShard> held, WorkerReport report,
        CancellationToken cancel = default)
    {
        var now = Seen(worker);
        _reports[worker] = report;
        if (Stalled(worker, held.Count > 0, report, now) is { } seconds)
        {
            _run?.Log($"worker {worker} stalled: it held {held.Count} shard(s) for {seconds:F0} s and its pipeline " +
                "moved no record; its shards are taken back and it is restarted");
            lock (_stalled)
            {
                _stalled.Add(worker);
                _condemned.Add(worker);   // it gets no more work: a shard it took now would die with it
            }
            lock (_inherited)
            {
                _store.EndLeasesOf(worker, now);
                ExpireLeases(now.AddMilliseconds(1));
            }
            return Task.FromResult<IReadOnlyList<bool>>([.. held.Select(_ => false)]);
        }
        IReadOnlyList<bool> kept =
            [.. held.Select(h => _store.Heartbeat(h.Shard, h.Token, Spec.Scheduling.Lease, now))];
        return Task.FromResult(kept);
    }

    /// <inheritdoc/>
    public Task<CommitOutcome> CommitAsync(string worker, ShardCommit commit, CancellationToken cancel = default)
    {
        var now = Seen(worker);
        if (CheckCommit(commit) is { } refusal)
        {
            Reject($"commit of shard {commit.Shard} from {worker} refused: {refusal}");
            var state = _store.Release(commit.Shard, commit.Token, $"{worker}: commit refused: {refusal}",
                Spec.Scheduling.Retries);
            _run?.Log($"shard {commit.Shard} -> {state?.ToString() ?? "not held by that lease"}");
            return Task.FromResult(CommitOutcome.Refused);
        }
        var outcome = _store.Commit(commit.Shard, commit.Token, commit.Output, commit.Quarantined);
        if (outcome == CommitOutcome.Committed)
        {
            var updated = Update(worker, w => w with { LastSeen = now, Records = w.Records + commit.Records,
                Shards = w.Shards + 1, Busy = w.Busy + commit.Seconds });
            _store.SaveWorker(updated);
        }
        _run?.Log($"shard {commit.Shard} from {worker}: {outcome} ({commit.Records} records, {commit.Quarantined} " +
            $"quarantined)");
        return Task.FromResult(outcome);
    }

    /// <inheritdoc/>
    public Task ReleaseAsync(string worker, HeldShard shard, string reason, bool preempted,
        CancellationToken cancel = default)
    {
        Seen(worker);
        if (reason.StartsWith(DiskFull, StringComparison.Ordinal))
            Interlocked.CompareExchange(ref _diskFull, reason, null);
        var state = _store.Release(shard.Shard, shard.Token, $"{worker}: {reason}", Spec.Scheduling.Retries,
            countsAsAttempt: !preempted);
        _run?.Log($"shard {shard.Shard} released by {worker} ({(preempted ? "preempted" : "failed")}: {reason}) " +
            $"-> {state?.ToString() ?? "no longer held"}");
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task LeaveAsync(string worker, string reason, CancellationToken cancel = default)
    {
        var now = Seen(worker);
        _store.SaveWorker(Update(worker, w => w with { LastSeen = now, Left = reason }));
        // Its last report stays: the job's per-stage totals include the workers that have left (their queues are
        // empty).
        _run?.Log($"worker {worker} left: {reason}");
        return Task.CompletedTask;
    }

    /// <summary>
    /// Takes over the leases a previous coordinator granted: however long the outage was, their workers get one lease
    /// period from now to reconnect and heartbeat. Called once by the coordinator that serves the job (not by readers
    /// such as a status query, which must change nothing).
    /// </summary>
    public void AdoptLeases() => _store.ExtendLeases(_clock.GetUtcNow() + Spec.Scheduling.Lease);

    /// <summary>
    /// Returns expired leases to the queue (or FAILED past the retry cap). A coordinator that serves the job (it has
    /// the input) halves an expired shard instead, and quarantines a record whose worker died with it twice.
    /// </summary>
    public int ExpireLeases(DateTimeOffset? now = null)
    {
        var at = now ?? _clock.GetUtcNow();
        int expired;
        lock (_inherited)
        {
            if (_source is not null) WriteIsolatedParts(at);
            expired = _store.ExpireLeases(at, Spec.Scheduling.Retries, _inherited, isolate: _source is not null);
        }
        if (expired > 0) _run?.Log($"{expired} lease(s) expired and went back to the queue" +
            (_source is null ? "" : " (a shard of several records in halves)"));
        return expired;
    }

    /// <summary>True when every shard is DONE or FAILED.</summary>
    public bool IsFinished()
    {
        var counts = _store.Counts();
        return counts[ShardState.Todo] == 0 && counts[ShardState.Leased] == 0;
    }

    /// <summary>Marks a worker that stopped without leaving (its process died) as gone.</summary>
    public void MarkLost(string worker, string reason)
    {
        if (!_workers.TryGetValue(worker, out var known) || known.Left is not null) return;
        _store.SaveWorker(_workers.AddOrUpdate(worker, _ => known with { Left = reason }, (_,
            w) => w.Left is null ? w with { Left = reason } : w));
        _reports.TryRemove(worker, out _);
        if (_source is not null) EndLeasesOf(worker);
    }

    /// <summary>Where the job stands: shards and records, throughput, per-worker and per-stage figures,
    /// failures.</summary>
    public InferStatus Status()
    {
        var shards = _store.Shards();
        var now = _clock.GetUtcNow();
        var done = shards.Where(s => s.State == ShardState.Done).ToList();
        var recordsDone = done.Sum(s => s.Records);
        var elapsed = (now - Started).TotalSeconds;
        var active = _workers.Values.Where(w => w.Left is null).ToList();
        // Since this coordinator started; a coordinator that has only just (re)started, or a status read from the
        // folder, uses the active workers' measured rates instead.
        var rate = elapsed > 10 && recordsDone > DoneAtStart ? (recordsDone - DoneAtStart) / elapsed : active.Sum(w
            => w.Throughput);
        var remaining = Records - recordsDone - shards.Where(s => s.State == ShardState.Failed).Sum(s => s.Records);
        var stages = _reports.Values.SelectMany(r => r.Stages).GroupBy(s => s.Name)
            .Select(g => new StageReport(g.Key, g.Sum(s => s.Tasks), g.Sum(s => s.Busy), g.Sum(s => s.Items),
                g.Sum(s => s.Queue))).ToList();
        return new InferStatus(Records, recordsDone, done.Sum(s => s.Quarantined), shards.Count, done.Count,
            shards.Count(s => s.State == ShardState.Leased),
                [.. shards.Where(s => s.State == ShardState.Failed).Select(s => new FailedShard(s.Id, s.FirstRecord,
                    s.Records, s.Attempts, s.LastError ?? ""))],
            rate, rate > 0 ? remaining / rate : null, [.. _workers.Values.OrderBy(w => w.Joined)], stages,
            _reports.Values.Sum(r => r.ReplicaRestarts), Rejected, elapsed);
    }

    /// <summary>Writes the current status as metrics to the run folder (step = seconds since start).</summary>
    public void WriteMetrics(InferStatus status)
    {
        if (_run is null) return;
        var step = (int)status.Elapsed;
        _run.Metric(step, 0, InferMetrics.RecordsDone, status.RecordsDone);
        _run.Metric(step, 0, InferMetrics.ShardsDone, status.ShardsDone);
        _run.Metric(step, 0, InferMetrics.RecordsPerSecond, status.RecordsPerSecond);
        _run.Metric(step, 0, InferMetrics.Quarantined, status.Quarantined);
        _run.Metric(step, 0, InferMetrics.Workers, status.ActiveWorkers);
        foreach (var s in status.Stages)
        {
            _run.Metric(step, 0, $"{InferMetrics.StageBusyPrefix}{s.Name}", status.Elapsed > 0 ? s.Busy / Math.Max(1,
                s.Tasks) / status.Elapsed : 0);
            _run.Metric(step, 0, $"{InferMetrics.StageQueuePrefix}{s.Name}", s.Queue);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _store.Dispose();

    private DateTimeOffset Seen(string worker)
    {
        var now = _clock.GetUtcNow();
        if (!_workers.ContainsKey(worker))
        {
            Reject($"call from unknown worker '{worker}' (it must join first)");
            throw new UnauthorizedAccessException($"worker '{worker}' has not joined this job");
        }
        Update(worker, w => w with { LastSeen = now });
        return now;
    }

    /// <summary>Changes a joined worker's record atomically (concurrent calls of one worker never lose an
    /// update).</summary>
    private WorkerInfo Update(string worker, Func<WorkerInfo, WorkerInfo> change) =>
        _workers.AddOrUpdate(worker,
            _ => throw new UnauthorizedAccessException($"worker '{worker}' has not joined this job"), (_,
                w) => change(w));
}

/// <summary>Metric names of batch-inference jobs.</summary>
internal static class InferMetrics
{
    /// <summary>Records in committed shards.</summary>
    public const string RecordsDone = "infer.records_done";
    /// <summary>Committed shards.</summary>
    public const string ShardsDone = "infer.shards_done";
    /// <summary>Records per second since the coordinator started.</summary>
    public const string RecordsPerSecond = "infer.records_per_s";
    /// <summary>Records quarantined so far.</summary>
    public const string Quarantined = "infer.quarantined";
    /// <summary>Active workers.</summary>
    public const string Workers = "infer.workers";
    /// <summary>Prefix of a stage's busy fraction (busy time per task over elapsed time).</summary>
    public const string StageBusyPrefix = "infer.busy.";
    /// <summary>Prefix of a stage's queue depth.</summary>
    public const string StageQueuePrefix = "infer.queue.";
}

/// <summary>A shard over its retry cap.</summary>
public sealed record FailedShard(long Shard, long FirstRecord, long Records, int Attempts, string Reason);

/// <summary>A snapshot of a batch-inference job.</summary>
public sealed record InferStatus(long Records, long RecordsDone, long Quarantined, int Shards, int ShardsDone,
    int ShardsLeased,
    IReadOnlyList<FailedShard> Failed, double RecordsPerSecond, double? EtaSeconds, IReadOnlyList<WorkerInfo> Workers,
    IReadOnlyList<StageReport> Stages, int ReplicaRestarts, int Rejected, double Elapsed)
{
    /// <summary>Workers that have not left.</summary>
    public int ActiveWorkers => Workers.Count(w => w.Left is null);

    /// <summary>The stage whose tasks are busiest (the one to give more replicas or threads), or null before any
    /// report.</summary>
    public string? Bottleneck => Stages.Where(s => s.Tasks > 0).OrderByDescending(s
        => s.Busy / s.Tasks).FirstOrDefault()?.Name;

    /// <summary>True when every shard is DONE or FAILED.</summary>
    public bool Finished => ShardsDone + Failed.Count == Shards;
}
