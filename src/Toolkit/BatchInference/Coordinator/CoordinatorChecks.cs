namespace Toolkit.BatchInference;

/// <summary>
/// What the coordinator does not take on trust: commits (checked against the part files), workers that hold shards
/// without progress (stalled), and workers that die (their shards halved until a record that kills them is alone,
/// then quarantined).
/// </summary>
internal sealed partial class CoordinatorCore
{
    /// <summary>
    /// Why a commit cannot be recorded, or null when it can: the part must be the one its lease names under
    /// <c>output/</c>, exist, and hold the shard's records less those quarantined (which the quarantine part must
    /// hold).
    /// </summary>
    private string? CheckCommit(ShardCommit commit)
    {
        var expected = $"{InferLayout.OutputFolder}/{InferLayout.PartName(commit.Shard, commit.Token,
            Spec.Data.OutputFormat)}";
        if (!string.Equals(commit.Output, expected, StringComparison.Ordinal))
            return $"it names '{commit.Output}', not '{expected}'";
        if (_store.Find(commit.Shard) is not { } shard) return "no such shard";
        if (commit.Records != shard.Records || commit.Quarantined < 0 || commit.Quarantined > shard.Records)
            return $"it reports {commit.Records} records ({commit.Quarantined} quarantined); the shard has " +
                $"{shard.Records}";
        var rows = PartFiles.CountRows(Path.Combine(JobFolder, expected));
        if (rows != shard.Records - commit.Quarantined)
            return rows is null ? $"{expected} does not exist"
                : $"{expected} holds {rows} records, not {shard.Records - commit.Quarantined}";
        if (commit.Quarantined == 0) return null;
        var quarantine = InferLayout.QuarantinePartOf(expected);
        var held = PartFiles.CountRows(Path.Combine(JobFolder, quarantine));
        return held == commit.Quarantined ? null
            : $"{quarantine} holds {held?.ToString() ?? "nothing"}, not {commit.Quarantined} quarantined records";
    }

    /// <summary>
    /// Seconds the worker has held shards without its pipeline moving a record, once that is past
    /// <see cref="InferSchedulingOptions.StallSeconds"/>; otherwise null. Progress is any stage finishing an item.
    /// </summary>
    private double? Stalled(string worker, bool holding, WorkerReport report, DateTimeOffset now)
    {
        var items = report.Stages.Sum(s => s.Items);
        var (last, since) = _progress.GetValueOrDefault(worker, (-1, now));
        if (items != last || !holding) _progress[worker] = (items, since = now);
        var stalled = (now - since).TotalSeconds;
        return Spec.Scheduling.StallSeconds > 0 && stalled >= Spec.Scheduling.StallSeconds ? stalled : null;
    }

    /// <summary>True when <paramref name="worker"/> was found stalled: it gets no more leases.</summary>
    private bool Condemned(string worker)
    {
        lock (_stalled) return _condemned.Contains(worker);
    }

    /// <summary>Workers found stalled since the last call: their process should be killed (it will not recover by
    /// itself) and replaced.</summary>
    public IReadOnlyList<string> TakeStalled()
    {
        lock (_stalled)
        {
            var stalled = _stalled.ToList();
            _stalled.Clear();
            return stalled;
        }
    }

    /// <summary>
    /// Ends the leases of a worker whose process has died now, rather than when they expire: its shards are halved
    /// (or their record isolated) at once.
    /// </summary>
    private void EndLeasesOf(string worker)
    {
        // one lock with ExpireLeases: the parts of an isolated record are written before the store records it
        lock (_inherited)
            if (_store.EndLeasesOf(worker, _clock.GetUtcNow()) > 0)
                ExpireLeases(_clock.GetUtcNow().AddMilliseconds(1));
    }

    /// <summary>True when <paramref name="worker"/> has done work for the job (committed a shard or moved a record):
    /// a worker that fails before that has failed to start.</summary>
    public bool HasWorked(string worker) =>
        (_workers.TryGetValue(worker, out var info) && info.Shards > 0)
        || (_reports.TryGetValue(worker, out var report) && report.Stages.Sum(s => s.Items) > 0);

    /// <summary>
    /// Writes the parts of every single-record shard the store will quarantine as it expires (an empty output part
    /// and its quarantine part), before the store records them: the store only ever names parts that exist.
    /// </summary>
    private void WriteIsolatedParts(DateTimeOffset now)
    {
        foreach (var shard in _store.Shards().Where(s => s.State == ShardState.Leased && s.LeaseExpires < now
            && s.Records == 1 && s.Attempts + 1 >= SqliteShardStore.IsolateAfter && !_inherited.Contains(s.Id)))
        {
            var record = _source!.Read(shard.FirstRecord, 1).Single();
            var reason = $"the worker processing it ended {shard.Attempts + 1} times (a crash, an out-of-memory " +
                "kill or a stall): isolated by halving its shard";
            var part = InferLayout.PartName(shard.Id, InferLayout.Isolated);
            var line = new QuarantinedRecord(record.Id, record.Index, shard.Id, reason).ToLine();
            AtomicFile.WriteLines(Path.Combine(JobFolder, InferLayout.QuarantinePartOf(part)), [line], "coordinator");
            AtomicFile.WriteLines(Path.Combine(JobFolder, InferLayout.OutputFolder, part), [], "coordinator");
            _run?.Log($"record {record.Index} (id {record.Id ?? "none"}) quarantined: {reason}");
        }
    }

    /// <summary>How a worker's release says the output's file system is full.</summary>
    public const string DiskFull = "disk full:";

    /// <summary>What a worker reported when the output's file system was full, or null: the job stops (nothing
    /// partial is committed) and can be resumed once there is space.</summary>
    public string? FullDisk => Volatile.Read(ref _diskFull);
    private string? _diskFull;

    /// <summary>True when <paramref name="error"/> is a write to a full file system (ENOSPC).</summary>
    public static bool IsDiskFull(Exception error) => error is IOException io
        && (io.HResult == 28 || io.Message.Contains("No space left on device", StringComparison.Ordinal));
}
