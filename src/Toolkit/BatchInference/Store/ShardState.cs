using System.Text.Json.Serialization;

namespace Toolkit.BatchInference;

/// <summary>Where a shard (a range of input records) stands. Every change goes through
/// <see cref="ShardTransitions"/>.</summary>
public enum ShardState
{
    /// <summary>Waiting for a worker.</summary>
    [JsonStringEnumMemberName("todo")] Todo,
    /// <summary>A worker holds it until its lease expires.</summary>
    [JsonStringEnumMemberName("leased")] Leased,
    /// <summary>Its output was committed (written atomically, then reported): never processed again.</summary>
    [JsonStringEnumMemberName("done")] Done,
    /// <summary>It failed more times than the retry cap allows: reported with its last reason, never silently
    /// dropped.</summary>
    [JsonStringEnumMemberName("failed")] Failed,
}

/// <summary>
/// The shard state machine, explicit and loud: the only legal transitions are TODO → LEASED (a worker takes it),
/// LEASED → DONE (its output committed, or its one record quarantined by the coordinator after killing workers),
/// LEASED → TODO (the lease expired, the worker failed or was preempted), LEASED → FAILED (over the retry cap).
/// Anything else is a bug and throws, naming both states.
/// </summary>
internal static class ShardTransitions
{
    private static readonly HashSet<(ShardState, ShardState)> Legal =
    [
        (ShardState.Todo, ShardState.Leased),
        (ShardState.Leased, ShardState.Done),
        (ShardState.Leased, ShardState.Todo),
        (ShardState.Leased, ShardState.Failed),
    ];

    /// <summary>
    /// The one way back from a final state: <c>infer retry</c> puts a FAILED shard, or a DONE shard that quarantined
    /// records, back to TODO (its old parts are then no commit's and are removed).
    /// </summary>
    /// <exception cref="InvalidOperationException">The shard is not FAILED or DONE.</exception>
    public static ShardState Retry(long shard, ShardState from) => from is ShardState.Failed or ShardState.Done
        ? ShardState.Todo
        : throw new InvalidOperationException($"Shard {shard} cannot be retried from {from}.");

    /// <summary>True when <paramref name="from"/> → <paramref name="to"/> is legal.</summary>
    public static bool IsLegal(ShardState from, ShardState to) => Legal.Contains((from, to));

    /// <summary>Returns <paramref name="to"/>, or throws when the transition is illegal.</summary>
    /// <exception cref="InvalidOperationException">Illegal; the message names the shard and both states.</exception>
    public static ShardState TransitionTo(long shard, ShardState from, ShardState to) => IsLegal(from, to)
        ? to
        : throw new InvalidOperationException($"Shard {shard} cannot go from {from} to {to}.");
}

/// <summary>A shard as the store knows it.</summary>
/// <param name="Id">Its index.</param>
/// <param name="FirstRecord">Index of its first input record.</param>
/// <param name="Records">How many records it covers.</param>
/// <param name="State">Where it stands.</param>
/// <param name="Attempts">Leases it has had that ended without a commit (expired or failed; a preemption does not
/// count).</param>
/// <param name="Worker">The worker holding it, if leased.</param>
/// <param name="LeaseExpires">When the lease ends, if leased.</param>
/// <param name="LastError">The reason of the last failure, if any.</param>
/// <param name="Output">The committed output file, once done.</param>
/// <param name="Quarantined">How many of its records were quarantined (with reasons, next to the output), once
/// done.</param>
public sealed record Shard(long Id, long FirstRecord, long Records, ShardState State, int Attempts, string? Worker,
    DateTimeOffset? LeaseExpires, string? LastError, string? Output,
    long Quarantined = 0);

/// <summary>A worker's hold on a shard: the token proves it is still the holder when it reports.</summary>
/// <param name="Shard">The shard.</param>
/// <param name="Token">Unique per lease; a report with an older token changes nothing.</param>
/// <param name="Expires">When the lease ends unless renewed by a heartbeat.</param>
internal sealed record ShardLease(Shard Shard, string Token, DateTimeOffset Expires);
