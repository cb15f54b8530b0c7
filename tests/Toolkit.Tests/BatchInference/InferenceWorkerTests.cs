using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Runs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The worker and the coordinator together, in this process (the RPC layer is tested separately): exactly-once output
/// through the pipeline, quarantine of bad rows and of records a model fails on (with the replica restarted), the retry
/// cap ending in FAILED shards that are reported, drain and preemption costing no attempt.
/// </summary>
public sealed class InferenceWorkerTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-worker-");

    public void Dispose() => _folder.Dispose();

    private (CoordinatorCore Core, InferJobOptions Spec) Coordinator(string input, Func<InferJobOptions,
        InferJobOptions>? change = null)
    {
        var spec = new InferJobOptions {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 40, Retries = 2, LeaseSeconds = 30 },
            Models = new() { BatchSize = 8 },
        };
        spec = change?.Invoke(spec) ?? spec;
        spec.Check();
        var source = RecordSource.Open(spec);
        return (new CoordinatorCore(spec, _folder.Path, new SqliteShardStore(Path.Combine(_folder.Path,
            InferLayout.StateFile)), source.Count), spec);
    }

    [Fact]
    public async Task TwoWorkers_WriteEveryRecordExactlyOnce_InInputOrderPerShard_AndQuarantineBadRows()
    {
        var input = Inputs.Jsonl(_folder.Path, 230, i => i switch { 17 => "{broken", 101 => """{"id": "r00101"}""",
            _ => null });
        var (core, spec) = Coordinator(input, s => s with { Models = s.Models with { Replicas = 2 } });
        using var _ = core;
        var workers = new[] { "a", "b" }.Select(id => new InferenceWorker(core, id,
            __ => [new LengthModel()]).RunAsync()).ToList();
        var summaries = await Task.WhenAll(workers);

        Assert.All(summaries, s => Assert.Equal("finished", s.Reason));
        Assert.Equal(230, summaries.Sum(s => s.Records));
        var check = InferOutput.Verify(_folder.Path, RecordSource.Open(spec));
        Assert.True(check.ExactlyOnce, check.ToString());
        Assert.Equal((228L, 2L), (check.Rows, check.Quarantined));
        var rows = InferOutput.Rows(_folder.Path).ToList();
        Assert.Equal(rows.Select(r => r.GetProperty("id").GetString()).Order(StringComparer.Ordinal),
            rows.Select(r => r.GetProperty("id").GetString()));
        Assert.Equal("record number 5 says hello!!!!!".Length,
            rows.Single(r => r.GetProperty("id").GetString() == "r00005").GetProperty("length").GetInt32());
        var quarantined = InferOutput.Quarantined(_folder.Path).ToList();
        Assert.Equal([17L, 101L], quarantined.Select(q => q.Record));
        Assert.StartsWith("not JSON", quarantined[0].Reason);
        Assert.Equal(("r00101", "no 'text' string"), (quarantined[1].Id, quarantined[1].Reason));
        var status = core.Status();
        Assert.True(status.Finished);
        Assert.Equal((status.Shards, 2L), (status.ShardsDone, status.Quarantined));
        // 6 laid out; the last ones may be split to the workers' share (adaptive shards)
        Assert.True(status.Shards >= 6, $"{status.Shards} shards");
        Assert.Contains(status.Stages, s => s.Name == "length" && s.Tasks == 4 && s.Items == 228);
        Assert.Empty(Directory.GetFiles(Path.Combine(_folder.Path, InferLayout.OutputFolder), "*.tmp"));
    }

    [Fact]
    public async Task ARecordTheModelFailsOn_IsQuarantined_TheReplicaRestarted_AndTheRestOfItsBatchKept()
    {
        var input = Inputs.Jsonl(_folder.Path, 80,
            i => i is 9 or 50 ? $$"""{"id": "p{{i}}", "text": "POISON {{i}}"}""" : null);
        var (core, spec) = Coordinator(input);
        using var _ = core;
        var model = new LengthModel();
        var summary = await new InferenceWorker(core, "a", __ => [model]).RunAsync();

        Assert.Equal(2, summary.ReplicaRestarts);
        Assert.Equal(3, model.ReplicasCreated);
        var check = InferOutput.Verify(_folder.Path, RecordSource.Open(spec));
        Assert.True(check.ExactlyOnce, check.ToString());
        Assert.Equal((78L, 2L), (check.Rows, check.Quarantined));
        Assert.All(InferOutput.Quarantined(_folder.Path),
            q => Assert.Equal("length: tensor shape mismatch on a poisoned record", q.Reason));
    }

    /// <summary>A poisoned record in each shard fails its batch, and restarting the replica fails too (a model that
    /// breaks mid-run): every worker fails holding both shards, which end FAILED at the retry cap.</summary>
    [Fact]
    public async Task AWorkerThatKeepsFailing_UsesUpTheRetryCap_AndTheShardsAreReportedFailed_NeverDropped()
    {
        var input = Inputs.Jsonl(_folder.Path, 60,
            i => i is 5 or 45 ? $$"""{"id": "p{{i}}", "text": "POISON {{i}}"}""" : null);
        var (core, spec) = Coordinator(input);
        using var _ = core;
        for (var attempt = 0; attempt < spec.Scheduling.Retries; attempt++)
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => new InferenceWorker(core, $"w{attempt}",
                __ => [new LengthModel { HealthyReplicas = 1 }]).RunAsync());
            Assert.Contains("model file is corrupt", e.Message);
        }
        var status = core.Status();
        Assert.True(status.Finished);
        Assert.Equal(0, status.ShardsDone);
        Assert.Equal([0L, 1L], status.Failed.Select(f => f.Shard));
        Assert.All(status.Failed, f => Assert.Equal((2, true), (f.Attempts,
            f.Reason.Contains("model file is corrupt"))));
        // A healthy worker now finds nothing to do: failed shards are not silently retried forever.
        var late = await new InferenceWorker(core, "late", __ => [new LengthModel()]).RunAsync();
        Assert.Equal((0, "finished"), (late.Shards, late.Reason));
    }

    /// <summary>A worker that cannot load its model fails before it leases anything: the shards are not its fault
    /// (no attempt is charged), and a healthy worker then does them all.</summary>
    [Fact]
    public async Task AWorkerThatCannotLoadItsModel_FailsBeforeLeasing_AndNoShardIsCharged()
    {
        var input = Inputs.Jsonl(_folder.Path, 60);
        var (core, spec) = Coordinator(input);
        using var _ = core;
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => new InferenceWorker(core, "broken",
            __ => [new LengthModel { HealthyReplicas = 0 }]).RunAsync());
        Assert.Contains("model file is corrupt", e.Message);
        var status = core.Status();
        Assert.Equal((false, 0, 0), (status.Finished, status.ShardsDone, status.Failed.Count));
        var healthy = await new InferenceWorker(core, "healthy", __ => [new LengthModel()]).RunAsync();
        Assert.Equal("finished", healthy.Reason);
        var check = InferOutput.Verify(_folder.Path, RecordSource.Open(spec));
        Assert.True(check.ExactlyOnce, check.ToString());
        Assert.Equal((60L, 0L), (check.Rows, check.Quarantined));
    }

    [Fact]
    public async Task Drain_FinishesTheShardsHeld_ThenLeaves_WithoutCostingAnAttempt()
    {
        var input = Inputs.Jsonl(_folder.Path, 400);
        var (core, spec) = Coordinator(input);
        using var _ = core;
        using var drain = new CancellationTokenSource();
        var worker = new InferenceWorker(core, "a", __ => [new SlowModel(drain)]);
        var summary = await worker.RunAsync(drain.Token);

        Assert.Equal("drained", summary.Reason);
        Assert.InRange(summary.Shards, 1, worker.MaxHeldShards);
        using var store = new SqliteShardStore(Path.Combine(_folder.Path, InferLayout.StateFile));
        var shards = store.Shards();
        Assert.Equal(summary.Shards, shards.Count(s => s.State == ShardState.Done));
        Assert.All(shards, s => Assert.Equal(0, s.Attempts));
        Assert.DoesNotContain(shards, s => s.State == ShardState.Leased);
        Assert.Equal("drained", store.Workers().Single().Left);
    }

    [Fact]
    public async Task Abort_GivesTheShardsBack_AsPreempted_CostingNoAttempt()
    {
        var input = Inputs.Jsonl(_folder.Path, 400);
        var (core, _) = Coordinator(input);
        using var __ = core;
        using var abort = new CancellationTokenSource();
        var summary = await new InferenceWorker(core, "a", ___ => [new SlowModel(abort)]).RunAsync(abort: abort.Token);

        Assert.Equal("stopped", summary.Reason);
        using var store = new SqliteShardStore(Path.Combine(_folder.Path, InferLayout.StateFile));
        Assert.All(store.Shards(), s => Assert.Equal((0, true), (s.Attempts,
            s.State is ShardState.Todo or ShardState.Done)));
        Assert.Contains(store.Shards(), s => s.LastError?.Contains("preempted") == true);
    }

    [Fact]
    public async Task ARestartedCoordinator_ResumesFromTheStore_WithoutRedoingCommittedShards()
    {
        var input = Inputs.Jsonl(_folder.Path, 200);
        var (core, spec) = Coordinator(input);
        using (core)
        {
            using var drain = new CancellationTokenSource();
            await new InferenceWorker(core, "a", _ => [new SlowModel(drain)]).RunAsync(drain.Token);
        }
        var firstRun = Directory.GetFiles(Path.Combine(_folder.Path, InferLayout.OutputFolder)).ToDictionary(f => f,
            File.GetLastWriteTimeUtc);
        Assert.NotEmpty(firstRun);

        var (again, _) = Coordinator(input);
        using (again)
        {
            Assert.Equal(firstRun.Count * 40L, again.DoneAtStart);
            await new InferenceWorker(again, "b", _ => [new LengthModel()]).RunAsync();
            Assert.True(again.Status().Finished);
        }
        foreach (var (file, written) in firstRun) Assert.Equal(written, File.GetLastWriteTimeUtc(file));
        Assert.True(InferOutput.Verify(_folder.Path, RecordSource.Open(spec)).ExactlyOnce);
    }

    [Fact]
    public async Task ALateWorkerWhoseLeaseExpired_CannotAddToTheOutput_ItsPartIsNeverRead_AndIsRemoved()
    {
        var input = Inputs.Jsonl(_folder.Path, 40);
        var (core, spec) = Coordinator(input);
        using var _ = core;
        await core.JoinAsync(new WorkerHello("late", "host", 1));
        var lease = (await core.LeaseAsync("late", 1)).Leases.Single();
        // it stalled; its shard went back to the queue
        core.ExpireLeases(DateTimeOffset.UtcNow.AddHours(1));
        await new InferenceWorker(core, "fresh", __ => [new LengthModel()]).RunAsync();

        // The stalled worker wakes up, writes its part (different content: a record twice) and reports it.
        var late = Path.Combine(_folder.Path, InferLayout.OutputFolder, InferLayout.PartName(lease.Shard.Id,
            lease.Token));
        File.WriteAllLines(late, Enumerable.Repeat("""{"id":"r00000","length":1}""", 40));
        Assert.Equal(CommitOutcome.AlreadyDone, await core.CommitAsync("late", new ShardCommit(lease.Shard.Id,
            lease.Token, $"output/{Path.GetFileName(late)}", 40, 0, 1)));

        Assert.True(InferOutput.Verify(_folder.Path, RecordSource.Open(spec)).ExactlyOnce);
        Assert.Equal(1, InferOutput.RemoveUncommitted(_folder.Path));
        Assert.False(File.Exists(late));
    }

    /// <summary>
    /// A commit is recorded only for the part its lease names, under output/, holding the shard's records: a path
    /// outside the folder, another lease's part, a missing part, or a part with another record count is refused,
    /// logged and counted, and the shard goes back to the queue.
    /// </summary>
    [Fact]
    public async Task TheCoordinatorRefusesWorkersThatDidNotJoin_AndCommitsOfMissingOrForeignParts()
    {
        var spec = new InferJobOptions {
            Data = new() { Input = Inputs.Jsonl(_folder.Path, 10) },
            Scheduling = new() { ShardSize = 40, Retries = 10, LeaseSeconds = 30 },
        };
        using var run = Toolkit.Runs.RunDirectory.CreateNamed(_folder.Path, "job", spec);
        var folder = run.Path;
        using var core = new CoordinatorCore(spec, folder, new SqliteShardStore(Path.Combine(folder,
            InferLayout.StateFile)), 10, run);
        await Assert.ThrowsAsync<UnauthorizedAccessException>(() => core.LeaseAsync("stranger", 1));
        await core.JoinAsync(new WorkerHello("a", "host", 1));
        var lease = (await core.LeaseAsync("a", 1)).Leases.Single();
        var name = $"output/{InferLayout.PartName(lease.Shard.Id, lease.Token)}";
        var part = Path.Combine(folder, name);
        var rows = Enumerable.Range(0, 10).Select(i => $$"""{"id":"r{{i:D5}}","length":1}""").ToList();
        Directory.CreateDirectory(Path.GetDirectoryName(part)!);
        File.WriteAllLines(Path.Combine(folder, "output", "part-000000-someone.jsonl"), rows);
        ShardCommit Commit(string output, long records = 10) => new(lease.Shard.Id, lease.Token, output, records, 0,
            1);
        var refused = new Func<ShardCommit>[]   // each under the lease of the time
        {
            () => Commit("../../etc/passwd"), () => Commit("output/part-000000-someone.jsonl"),   // outside; foreign
            () => Commit(name),                                                                  // not written
        };
        foreach (var commit in refused)
        {
            Assert.Equal(CommitOutcome.Refused, await core.CommitAsync("a", commit()));
            lease = (await core.LeaseAsync("a", 1)).Leases.Single();   // it went back to the queue
            (name, part) = ($"output/{InferLayout.PartName(lease.Shard.Id, lease.Token)}",
                Path.Combine(folder, "output", InferLayout.PartName(lease.Shard.Id, lease.Token)));
        }
        File.WriteAllLines(part, rows.Take(9));   // a record short
        Assert.Equal(CommitOutcome.Refused, await core.CommitAsync("a", Commit(name)));
        Assert.Equal(5, core.Rejected);   // the stranger and four commits
        lease = (await core.LeaseAsync("a", 1)).Leases.Single();
        Assert.Equal(4, lease.Shard.Attempts);   // each refusal used an attempt
        name = $"output/{InferLayout.PartName(lease.Shard.Id, lease.Token)}";
        File.WriteAllLines(Path.Combine(folder, name), rows);
        Assert.Equal(CommitOutcome.Committed, await core.CommitAsync("a", Commit(name)));
        run.Dispose();
        var log = File.ReadAllText(Path.Combine(folder, "log.txt"));
        Assert.Contains("refused: it names '../../etc/passwd'", log);
        Assert.Contains("does not exist", log);
        Assert.Contains("holds 9 records, not 10", log);
    }

    /// <summary>A model that takes longer to load than <c>--stall-seconds</c> (a session loading on a busy machine):
    /// the worker leases nothing until its replicas exist, so it is never taken for stalled and no shard is halved
    /// or record blamed for it.</summary>
    [Fact]
    public async Task AModelSlowerToLoadThanTheStallLimit_IsNoStall_TheWorkerLeasesOnceItIsReady()
    {
        var input = Inputs.Jsonl(_folder.Path, 80);
        var (core, spec) = Coordinator(input, s => s with
            { Scheduling = s.Scheduling with { LeaseSeconds = 1, StallSeconds = 1 } });
        using var _ = core;
        // a failure must not hang the test: a worker found stalled gets no more leases and would wait forever
        using var abort = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var summary = await new InferenceWorker(core, "a", __ => [new SlowToLoadModel(TimeSpan.FromSeconds(3))])
            .RunAsync(abort: abort.Token);

        Assert.Equal("finished", summary.Reason);
        Assert.Empty(core.TakeStalled());
        var check = InferOutput.Verify(_folder.Path, RecordSource.Open(spec));
        Assert.True(check.ExactlyOnce, check.ToString());
        Assert.Equal((80L, 0L), (check.Rows, check.Quarantined));
    }

    /// <summary>The length model, each replica <paramref name="load"/> long to create.</summary>
    private sealed class SlowToLoadModel(TimeSpan load) : IModelStage
    {
        private readonly LengthModel _inner = new();
        public string Name => _inner.Name;
        public object Prepare(string text) => _inner.Prepare(text);
        public void Write(Utf8JsonWriter json, object output) => _inner.Write(json, output);
        public void Dispose() { }

        public IPredictor CreateReplica()
        {
            Thread.Sleep(load);
            return _inner.CreateReplica();
        }
    }

    /// <summary>The length model, slowed down, that signals <paramref name="stop"/> once its first batch is done (so
    /// the worker holds shards when it stops).</summary>
    private sealed class SlowModel(CancellationTokenSource stop) : IModelStage
    {
        private readonly LengthModel _inner = new();
        private CancellationTokenSource Stop => stop;
        public string Name => _inner.Name;
        public object Prepare(string text) => text;
        private int _armed;
        public IPredictor CreateReplica() => new Replica(_inner.CreateReplica(), this);
        public void Write(Utf8JsonWriter json, object output) => _inner.Write(json, output);
        public void Dispose() { }

        private sealed class Replica(IPredictor inner, SlowModel owner) : IPredictor
        {
            public object[] Predict(IReadOnlyList<object> inputs)
            {
                Thread.Sleep(20);
                if (Interlocked.Exchange(ref owner._armed,
                    1) == 0) owner.Stop.CancelAfter(TimeSpan.FromMilliseconds(50));
                return inner.Predict(inputs);
            }
            public void Dispose() => inner.Dispose();
        }
    }
}
