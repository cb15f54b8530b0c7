namespace Toolkit.BatchInference;

/// <summary>What a worker's commit did.</summary>
internal enum CommitOutcome
{
    /// <summary>The shard is now DONE with this output.</summary>
    Committed,
    /// <summary>It was already DONE: a repeated completion changes nothing (idempotent).</summary>
    AlreadyDone,
    /// <summary>The lease is no longer this worker's (it expired and the shard went back to the queue): nothing
    /// recorded; the shard is redone. The late part (named by its lease) is never read: readers take the parts the
    /// store lists as committed.</summary>
    Stale,
    /// <summary>The commit named another file than its lease implies, or the file is missing or holds another
    /// number of records: nothing recorded, the refusal logged, and the shard goes back to the queue (an attempt
    /// used).</summary>
    Refused,
}

/// <summary>
/// The coordinator's durable shard state (AntBatchInfer's stateful data-sharding service). Every change is a
/// transaction of a shard state transition (<see cref="ShardTransitions"/>), so a coordinator restarted on the same
/// store resumes exactly where it stopped, and no committed shard is redone.
/// </summary>
internal interface IShardStore : IDisposable
{
    /// <summary>Creates the shards of a job of <paramref name="records"/> records in shards of
    /// <paramref name="shardSize"/>; on a store that already holds a job, checks it is the same layout and changes
    /// nothing.</summary>
    /// <exception cref="InvalidOperationException">The store holds another job's layout.</exception>
    void Initialize(long records, long shardSize);

    /// <summary>
    /// Leases the waiting shard that comes first in the input to <paramref name="worker"/> until <paramref name="now"/>
    /// + <paramref name="duration"/>; null when none waits. A shard of more than <paramref name="maxRecords"/> records
    /// is split first, in the same transaction, unless the rest would be under <paramref name="minRecords"/>: it keeps
    /// its id and its first <paramref name="maxRecords"/> records, and the rest becomes a new waiting shard (with the
    /// same attempt count). Only a waiting shard is split, so no committed output covers the records that moved (a part
    /// written under an expired lease may, but it is never committed, read or kept).
    /// </summary>
    /// <remarks>With <paramref name="retried"/> false, only shards that have not failed before are leased.</remarks>
    ShardLease? TryLease(string worker, TimeSpan duration, DateTimeOffset now, long maxRecords = long.MaxValue,
        long minRecords = 1, bool retried = true);

    /// <summary>The shards <paramref name="worker"/> holds.</summary>
    IReadOnlyList<Shard> HeldBy(string worker);

    /// <summary>Records in waiting shards.</summary>
    long WaitingRecords();

    /// <summary>Extends a lease; false when <paramref name="token"/> no longer holds the shard.</summary>
    bool Heartbeat(long shard, string token, TimeSpan duration, DateTimeOffset now);

    /// <summary>Records that the shard's output (already written atomically) is committed, with how many of its records
    /// were quarantined.</summary>
    CommitOutcome Commit(long shard, string token, string output, long quarantined = 0);

    /// <summary>Ends a lease without output: back to the queue, or FAILED once <paramref name="retryCap"/> attempts are
    /// used. A preemption (<paramref name="countsAsAttempt"/> false) does not use an attempt.</summary>
    /// <returns>The shard's new state, or null when the token no longer held it.</returns>
    ShardState? Release(long shard, string token, string reason, int retryCap, bool countsAsAttempt = true);

    /// <summary>
    /// Returns every lease that ended before <paramref name="now"/> to the queue (an attempt used, FAILED past the cap,
    /// unless the shard is in <paramref name="forgiven"/>); the number returned or failed. With
    /// <paramref name="isolate"/> (a worker that stops heartbeating may have been killed by one of its records) a
    /// shard of several records goes back in two halves instead, and a single record whose lease ends without a commit
    /// for the <see cref="SqliteShardStore.IsolateAfter"/>th time is DONE, quarantined: its output is the part named
    /// <see cref="InferLayout.Isolated"/>, which the caller writes (empty, and its quarantine part) beforehand.
    /// </summary>
    int ExpireLeases(DateTimeOffset now, int retryCap, IReadOnlySet<long>? forgiven = null, bool isolate = false);

    /// <summary>Makes the leases <paramref name="worker"/> holds end at <paramref name="now"/> (its process died);
    /// returns how many.</summary>
    int EndLeasesOf(string worker, DateTimeOffset now);

    /// <summary>Extends every lease to end no earlier than <paramref name="until"/> (a restarted coordinator gives the
    /// workers it inherited time to reconnect).</summary>
    void ExtendLeases(DateTimeOffset until);

    /// <summary>Puts FAILED shards (<paramref name="failed"/>) and DONE shards that quarantined records
    /// (<paramref name="quarantined"/>) back to TODO with no attempt used; returns how many.</summary>
    int Retry(bool failed, bool quarantined);

    /// <summary>Every shard, by index.</summary>
    IReadOnlyList<Shard> Shards();

    /// <summary>One shard, or null when no shard has that id.</summary>
    Shard? Find(long shard);

    /// <summary>Shards per state.</summary>
    IReadOnlyDictionary<ShardState, int> Counts();

    /// <summary>Records a worker's latest state (joined, throughput, left), replacing what was known of it.</summary>
    void SaveWorker(WorkerInfo worker);

    /// <summary>Every worker the job has seen, in order of joining.</summary>
    IReadOnlyList<WorkerInfo> Workers();
}

/// <summary>A worker as the coordinator knows it.</summary>
/// <param name="Id">Its name (unique per process).</param>
/// <param name="Host">The machine it runs on.</param>
/// <param name="Joined">When it joined.</param>
/// <param name="LastSeen">Its last call.</param>
/// <param name="Records">Records it committed.</param>
/// <param name="Shards">Shards it committed.</param>
/// <param name="Busy">Seconds it spent on the shards it committed.</param>
/// <param name="Left">Why it left (drained, error, lost), or null while it is active.</param>
public sealed record WorkerInfo(string Id, string Host, DateTimeOffset Joined, DateTimeOffset LastSeen, long Records,
    long Shards, double Busy, string? Left)
{
    /// <summary>Records per second over the time it spent on committed shards.</summary>
    public double Throughput => Busy > 0 ? Records / Busy : 0;
}
