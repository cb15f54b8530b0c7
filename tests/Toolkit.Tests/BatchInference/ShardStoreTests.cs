using Toolkit.BatchInference;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The coordinator's durable shard state on a real SQLite file: leases, idempotent commits, expiry, the retry cap,
/// preemption that costs no attempt, restart on the same file, the state machine's refusals, and several processes'
/// worth of connections leasing concurrently without a shard committed twice.
/// </summary>
public sealed class ShardStoreTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(1);
    private readonly TemporaryFolder _folder = new("toolkit-shards-");

    private string Database => Path.Combine(_folder.Path, "state.db");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Initialize_SplitsTheRecords_AndReopeningTheSameJobChangesNothing()
    {
        using (var store = new SqliteShardStore(Database))
        {
            store.Initialize(records: 1050, shardSize: 100);
            var shards = store.Shards();
            Assert.Equal(11, shards.Count);
            Assert.Equal((1000L, 50L), (shards[^1].FirstRecord, shards[^1].Records));
            Assert.All(shards, s => Assert.Equal(ShardState.Todo, s.State));
            store.Initialize(1050, 100);
            Assert.Equal(11, store.Shards().Count);
        }
        using var reopened = new SqliteShardStore(Database);
        Assert.Contains("holds a job of 1050 records in shards of 100",
            Assert.Throws<InvalidOperationException>(() => reopened.Initialize(2000, 100)).Message);
    }

    /// <summary>
    /// A waiting shard over the limit is split as it is leased: it keeps its id and its first records, the rest waits
    /// as a new shard with the same attempt count, and leasing goes on in input order. A stale holder of the shard's
    /// earlier lease cannot commit it.
    /// </summary>
    [Fact]
    public void TryLease_SplitsAWaitingShardOverTheLimit_KeepingInputOrderAndAttempts()
    {
        using var store = new SqliteShardStore(Database);
        store.Initialize(records: 100, shardSize: 40);                                   // [0,40) [40,80) [80,100)
        var old = store.TryLease("dead", Lease, T0)!;
        Assert.Equal(1, store.ExpireLeases(T0 + TimeSpan.FromMinutes(2), retryCap: 5));    // attempt 1, waiting again
        var first = store.TryLease("w1", Lease, T0 + TimeSpan.FromMinutes(2), maxRecords: 15)!;
        Assert.Equal((0L, 0L, 15L), (first.Shard.Id, first.Shard.FirstRecord, first.Shard.Records));
        var rest = store.Shards().Single(s => s.Id == 3);
        Assert.Equal((15L, 25L, ShardState.Todo, 1), (rest.FirstRecord, rest.Records, rest.State, rest.Attempts));
        Assert.Equal(85, store.WaitingRecords());
        // the expired lease covered [0,40)
        Assert.Equal(CommitOutcome.Stale, store.Commit(0, old.Token, "part-old.jsonl"));
        Assert.Equal(CommitOutcome.Committed, store.Commit(0, first.Token, "part-0.jsonl"));
        var next = store.TryLease("w1", Lease, T0 + TimeSpan.FromMinutes(2))!;
        // input order, not id order
        Assert.Equal((3L, 15L, 25L), (next.Shard.Id, next.Shard.FirstRecord, next.Shard.Records));
        // under the limit: whole
        Assert.Equal(40, store.TryLease("w1", Lease, T0, maxRecords: 1000)!.Shard.FirstRecord);
        // 15 + 5 would leave a piece under 10: whole
        Assert.Equal(20, store.TryLease("w1", Lease, T0, maxRecords: 15, minRecords: 10)!.Shard.Records);
        var shards = store.Shards().OrderBy(s => s.FirstRecord).ToList();
        Assert.Equal(100, shards.Sum(s => s.Records));
        Assert.All(shards.Zip(shards.Skip(1)), p => Assert.Equal(p.First.FirstRecord + p.First.Records,
            p.Second.FirstRecord));   // no gap, no overlap
    }

    [Fact]
    public void LeaseAndCommit_MarkDone_OnceOnly()
    {
        using var store = Store(records: 300, shardSize: 100);
        var lease = store.TryLease("w1", Lease, T0)!;
        Assert.Equal((0L, ShardState.Leased, "w1"), (lease.Shard.Id, lease.Shard.State, lease.Shard.Worker));
        Assert.Equal(1, store.TryLease("w2", Lease, T0)!.Shard.Id);                 // the next waiting shard
        Assert.Equal(CommitOutcome.Committed, store.Commit(0, lease.Token, "part-00000.jsonl"));
        Assert.Equal(CommitOutcome.AlreadyDone, store.Commit(0, lease.Token, "part-00000.jsonl"));
        Assert.Equal(ShardState.Done, store.Shards()[0].State);
        Assert.Equal("part-00000.jsonl", store.Shards()[0].Output);
        Assert.Equal(2, store.TryLease("w1", Lease, T0)!.Shard.Id);
        Assert.Null(store.TryLease("w1", Lease, T0));                                // nothing waits
    }

    [Fact]
    public void ExpiredLease_GoesBackToTheQueue_AndTheOldHolderCannotCommit()
    {
        using var store = Store(100, 100);
        var lease = store.TryLease("killed", Lease, T0)!;
        Assert.True(store.Heartbeat(0, lease.Token, Lease, T0 + TimeSpan.FromSeconds(50)));   // renewed until 1:50
        Assert.Equal(0, store.ExpireLeases(T0 + TimeSpan.FromSeconds(100), retryCap: 3));
        Assert.Equal(1, store.ExpireLeases(T0 + TimeSpan.FromMinutes(2), retryCap: 3));
        var shard = store.Shards()[0];
        Assert.Equal((ShardState.Todo, 1), (shard.State, shard.Attempts));
        Assert.Contains("lease of killed expired", shard.LastError);
        Assert.False(store.Heartbeat(0, lease.Token, Lease, T0 + TimeSpan.FromMinutes(2)));
        Assert.Equal(CommitOutcome.Stale, store.Commit(0, lease.Token, "late"));
        var again = store.TryLease("w2", Lease, T0 + TimeSpan.FromMinutes(2))!;
        Assert.Equal(CommitOutcome.Committed, store.Commit(0, again.Token, "part-00000.jsonl"));
    }

    [Fact]
    public void RetryCap_EndsInFailed_WithTheReason_AndPreemptionCostsNoAttempt()
    {
        using var store = Store(100, 100);
        var preempted = store.TryLease("w", Lease, T0)!;
        Assert.Equal(ShardState.Todo, store.Release(0, preempted.Token, "SIGTERM: drained", retryCap: 2,
            countsAsAttempt: false));
        Assert.Equal(0, store.Shards()[0].Attempts);
        Assert.Equal(ShardState.Todo, store.Release(0, store.TryLease("w", Lease, T0)!.Token, "bad batch",
            retryCap: 2));
        Assert.Equal(ShardState.Failed, store.Release(0, store.TryLease("w", Lease, T0)!.Token, "bad batch again",
            retryCap: 2));
        var failed = store.Shards()[0];
        Assert.Equal((ShardState.Failed, 2, "bad batch again"), (failed.State, failed.Attempts, failed.LastError));
        // never handed out again, never dropped
        Assert.Null(store.TryLease("w", Lease, T0));
        Assert.Equal(1, store.Counts()[ShardState.Failed]);
    }

    [Fact]
    public void Restart_OnTheSameFile_ResumesEveryState()
    {
        string token;
        using (var store = Store(300, 100))
        {
            Assert.Equal(CommitOutcome.Committed, store.Commit(0, store.TryLease("w", Lease, T0)!.Token, "part-0"));
            token = store.TryLease("w", Lease, T0)!.Token;
        }
        using var restarted = new SqliteShardStore(Database);
        restarted.Initialize(300, 100);
        Assert.Equal([ShardState.Done, ShardState.Leased, ShardState.Todo], restarted.Shards().Select(s => s.State));
        Assert.Equal(CommitOutcome.Committed, restarted.Commit(1, token, "part-1"));   // the lease survived the restart
        Assert.Equal(2, restarted.TryLease("w", Lease, T0)!.Shard.Id);
    }

    [Theory]
    [InlineData(ShardState.Todo, ShardState.Done)]
    [InlineData(ShardState.Done, ShardState.Leased)]
    [InlineData(ShardState.Failed, ShardState.Todo)]
    [InlineData(ShardState.Done, ShardState.Todo)]
    public void IllegalTransitions_Throw_NamingBothStates(ShardState from, ShardState to)
    {
        var e = Assert.Throws<InvalidOperationException>(() => ShardTransitions.TransitionTo(7, from, to));
        Assert.Equal($"Shard 7 cannot go from {from} to {to}.", e.Message);
    }

    /// <summary>
    /// With isolation, a shard whose lease ends without a commit goes back in halves (one attempt each), down to a
    /// single record, which is quarantined (DONE, named by the isolated part) the second time; a lease the store
    /// forgives (a restarted coordinator's) is returned whole and costs nothing.
    /// </summary>
    [Fact]
    public void ExpireLeases_WithIsolation_HalvesTheShard_UntilTheRecordThatKillsWorkersIsAlone()
    {
        using var store = Store(10, 5);
        var now = T0;
        // record 3 kills every worker that reads it: shard [0,5) → [0,2) [2,5) → [2,3) [3,5) → [3,4) [4,5)
        var deaths = 0;
        store.TryLease("w", Lease, now);
        store.ExpireLeases(now + TimeSpan.FromMinutes(2), retryCap: 3, forgiven: new HashSet<long> { 0 },
            isolate: true);
        Assert.Equal((5L, 0), (store.Find(0)!.Records, store.Find(0)!.Attempts));   // forgiven: whole, no attempt
        while (store.Shards().Any(s => s.State == ShardState.Todo))
        {
            now += TimeSpan.FromMinutes(2);
            var lease = store.TryLease("w", Lease, now)!;
            var s = lease.Shard;
            if (s.FirstRecord <= 3 && 3 < s.FirstRecord + s.Records)
            {
                deaths++;
                Assert.Equal(1, store.ExpireLeases(now + TimeSpan.FromMinutes(2), retryCap: 3, isolate: true));
            }
            else Assert.Equal(CommitOutcome.Committed, store.Commit(s.Id, lease.Token, $"part-{s.Id}"));
        }
        var shards = store.Shards().OrderBy(s => s.FirstRecord).ToList();
        Assert.Equal(10, shards.Sum(s => s.Records));
        Assert.All(shards, s => Assert.Equal(ShardState.Done, s.State));
        var isolated = shards.Single(s => s.Quarantined == 1);
        Assert.Equal((3L, 1L, 2), (isolated.FirstRecord, isolated.Records, isolated.Attempts));
        Assert.Equal($"output/{InferLayout.PartName(isolated.Id, InferLayout.Isolated)}", isolated.Output);
        Assert.Equal(4, deaths);   // [0,5), [2,5), [3,5), then [3,4) twice
    }

    /// <summary>Retry puts FAILED shards and/or DONE shards that quarantined records back to TODO, with no attempt
    /// used and no output; nothing else moves.</summary>
    [Fact]
    public void Retry_PutsFailedAndQuarantiningShardsBackToWork()
    {
        using var store = Store(30, 10);
        var failing = store.TryLease("w", Lease, T0)!;
        Assert.Equal(ShardState.Failed, store.Release(0, failing.Token, "model error", retryCap: 1));
        var quarantining = store.TryLease("w", Lease, T0)!;
        store.Commit(1, quarantining.Token, "output/part-1", quarantined: 2);
        var clean = store.TryLease("w", Lease, T0)!;
        store.Commit(2, clean.Token, "output/part-2");

        Assert.Equal(1, store.Retry(failed: true, quarantined: false));
        Assert.Equal((ShardState.Todo, 0), (store.Find(0)!.State, store.Find(0)!.Attempts));
        Assert.Equal(ShardState.Done, store.Find(1)!.State);
        Assert.Equal(1, store.Retry(failed: false, quarantined: true));
        Assert.Equal((ShardState.Todo, null, 0L), (store.Find(1)!.State, store.Find(1)!.Output,
            store.Find(1)!.Quarantined));
        Assert.Equal(("output/part-2", ShardState.Done), (store.Find(2)!.Output, store.Find(2)!.State));
        Assert.Throws<InvalidOperationException>(() => ShardTransitions.Retry(2, ShardState.Leased));
    }

    [Fact]
    public async Task ConcurrentConnections_CommitEveryShardExactlyOnce()
    {
        using (var store = Store(2000, 10)) { }
        var committed = new System.Collections.Concurrent.ConcurrentBag<long>();
        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            // one connection each, as separate worker processes would have
            using var store = new SqliteShardStore(Database);
            while (store.TryLease($"w{w}", Lease, T0) is { } lease)
                if (store.Commit(lease.Shard.Id, lease.Token,
                    $"part-{lease.Shard.Id}") == CommitOutcome.Committed) committed.Add(lease.Shard.Id);
        })).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => (long)i), committed.Order());
        using var check = new SqliteShardStore(Database);
        Assert.Equal(200, check.Counts()[ShardState.Done]);
    }

    private SqliteShardStore Store(long records, long shardSize)
    {
        var store = new SqliteShardStore(Database);
        store.Initialize(records, shardSize);
        return store;
    }
}
