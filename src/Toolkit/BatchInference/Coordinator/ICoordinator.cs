namespace Toolkit.BatchInference;

/// <summary>
/// What a worker asks of the coordinator. <see cref="CoordinatorCore"/> implements it over the durable store; workers
/// in this process call it directly, workers in other processes or on other machines through gRPC (the
/// <c>Toolkit.Grpc</c> assembly), with the same semantics.
/// </summary>
internal interface ICoordinator
{
    /// <summary>Joins the job: returns the job spec and folder.</summary>
    Task<WorkerJoin> JoinAsync(WorkerHello hello, CancellationToken cancel = default);

    /// <summary>Asks for work: up to <paramref name="maxShards"/> leases (the coordinator sizes the grant by the
    /// worker's throughput).</summary>
    Task<LeaseGrant> LeaseAsync(string worker, int maxShards, CancellationToken cancel = default);

    /// <summary>Renews the worker's leases and reports its pipeline; returns, per held shard, whether the lease is
    /// still the worker's.</summary>
    Task<IReadOnlyList<bool>> HeartbeatAsync(string worker, IReadOnlyList<HeldShard> held, WorkerReport report,
        CancellationToken cancel = default);

    /// <summary>Reports a shard whose output is written (atomically): DONE, idempotently.</summary>
    Task<CommitOutcome> CommitAsync(string worker, ShardCommit commit, CancellationToken cancel = default);

    /// <summary>Gives a shard back without output: an error (an attempt used) or a preemption (none used).</summary>
    Task ReleaseAsync(string worker, HeldShard shard, string reason, bool preempted,
        CancellationToken cancel = default);

    /// <summary>Leaves the job (drained, or stopping).</summary>
    Task LeaveAsync(string worker, string reason, CancellationToken cancel = default);

    /// <summary>
    /// Whether a call that threw <paramref name="error"/> is worth retrying (the coordinator may be restarting): by
    /// default an I/O, HTTP or timeout failure.
    /// </summary>
    bool IsTransient(Exception error) => error is IOException or HttpRequestException or TimeoutException;
}

/// <summary>A worker introducing itself.</summary>
internal sealed record WorkerHello(string Worker, string Host, int ProcessId);

/// <summary>What a joining worker needs: the job spec (JSON of <see cref="InferJobOptions"/>) and the job
/// folder.</summary>
internal sealed record WorkerJoin(string SpecJson, string JobFolder);

/// <summary>Leases granted; <paramref name="Finished"/> when no shard is waiting or leased (the worker can
/// stop).</summary>
internal sealed record LeaseGrant(IReadOnlyList<ShardLease> Leases, bool Finished);

/// <summary>A shard a worker holds: its id and lease token.</summary>
internal sealed record HeldShard(long Shard, string Token);

/// <summary>A finished shard: its output file (relative to the job folder), counts, and the time the worker spent on
/// it.</summary>
internal sealed record ShardCommit(long Shard, string Token, string Output, long Records, long Quarantined,
    double Seconds);

/// <summary>A worker's pipeline, as of a heartbeat.</summary>
/// <param name="Stages">Per stage: busy time, items, queue depth.</param>
/// <param name="Records">Records the worker has put through the whole pipeline since it joined.</param>
/// <param name="ReplicaRestarts">Predictor replicas restarted after a crash.</param>
internal sealed record WorkerReport(IReadOnlyList<StageReport> Stages, long Records, int ReplicaRestarts)
{
    /// <summary>Nothing yet.</summary>
    public static WorkerReport Empty { get; } = new([], 0, 0);
}

/// <summary>One pipeline stage of a worker.</summary>
/// <param name="Name">read, preprocess, a model's name, postprocess or write.</param>
/// <param name="Tasks">Tasks running the stage (replicas for a model).</param>
/// <param name="Busy">Seconds its tasks spent working (summed over tasks).</param>
/// <param name="Items">Records it finished.</param>
/// <param name="Queue">Records waiting in its input queue.</param>
public sealed record StageReport(string Name, int Tasks, double Busy, long Items, int Queue);
