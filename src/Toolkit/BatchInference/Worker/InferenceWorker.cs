using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// A batch-inference worker: leases shards from the coordinator and runs them through a pipeline of
/// concurrent stages joined by bounded channels (read → preprocess → each model with its replicas →
/// postprocess → write), so reading, tokenising, predicting and writing overlap and the next shard is read
/// while the last one is still being predicted. A finished shard's output is written atomically
/// (<see cref="AtomicFile"/>) and only then committed: together with the coordinator's idempotent commit,
/// every record is in the output exactly once.
/// <para>Faults: a record that cannot be read, preprocessed or predicted is quarantined with its reason (a
/// failed batch is retried record by record after the replica is restarted); a worker that dies loses its
/// leases when they expire; a drain (SIGTERM) stops leasing, finishes the held shards and leaves; an abort
/// gives the held shards back as preempted, which costs them no attempt.</para>
/// </summary>
public sealed class InferenceWorker
{
    private readonly ICoordinator _coordinator;
    private readonly Func<InferJobOptions, IReadOnlyList<IModelStage>> _models;
    private readonly ConcurrentDictionary<string, ShardBuffer> _held = new();   // by lease token: a shard leased again is another buffer
    private readonly List<Stage> _stages = [];
    private long _records;
    private int _restarts;
    private long _lastCommit;
    private volatile bool _jobFinished;

    /// <summary>A worker named <paramref name="id"/> working for <paramref name="coordinator"/>.</summary>
    /// <param name="coordinator">The coordinator (in-process or a gRPC client).</param>
    /// <param name="id">A name unique within the job.</param>
    /// <param name="models">Creates the model stages (default: what the spec names, <see cref="ModelStages.Create"/>).</param>
    public InferenceWorker(ICoordinator coordinator, string id, Func<InferJobOptions, IReadOnlyList<IModelStage>>? models = null)
    {
        (_coordinator, Id, _models) = (coordinator, id, models ?? ModelStages.Create);
    }

    /// <summary>The worker's name.</summary>
    public string Id { get; }

    /// <summary>How long the worker keeps retrying a coordinator it cannot reach before it gives up.</summary>
    public TimeSpan CoordinatorGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most shards held at once (the one being finished and the ones read ahead).</summary>
    public int MaxHeldShards { get; init; } = 3;

    /// <summary>Writes progress lines (joined, shard committed, left), or null.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Runs until the job is finished, <paramref name="drain"/> is signalled and the held shards are done, or <paramref name="abort"/>.</summary>
    /// <returns>What the worker did.</returns>
    public async Task<WorkerSummary> RunAsync(CancellationToken drain = default, CancellationToken abort = default)
    {
        var join = await Call(c => _coordinator.JoinAsync(new WorkerHello(Id, Environment.MachineName, Environment.ProcessId), c), abort);
        var spec = JsonSerializer.Deserialize<InferJobOptions>(join.SpecJson, ToolkitJson.Options)!;
        RecordSource source;
        IReadOnlyList<IModelStage> models;
        try
        {
            source = RecordSource.Open(spec);
            models = _models(spec);
        }
        catch (Exception e)
        {
            try { await _coordinator.LeaveAsync(Id, $"error: {e.Message}", CancellationToken.None); } catch (Exception) { }
            throw new InvalidOperationException($"worker {Id} could not start: {e.Message}", e);
        }
        var replicaCounts = models.Select(m => m is DagStage dag ? dag.Stage.Replicas : spec.Replicas).ToList();
        Log?.Invoke($"{Id}: joined; {source.Count} records, models {string.Join(", ", models.Select((m, k) => $"{m.Name} x{replicaCounts[k]}"))} replica(s)");
        _lastCommit = Stopwatch.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(abort);
        var committed = 0;
        var reason = "finished";
        try
        {
            var shards = Channel.CreateBounded<ShardLease>(1);
            var toPrepare = Channel.CreateBounded<WorkItem>(4 * spec.BatchSize);
            var toModel = models.Select((_, k) => Channel.CreateBounded<List<WorkItem>>(2 * replicaCounts[k] + 1)).ToList();
            var toPost = Channel.CreateBounded<List<WorkItem>>(4);
            var toWrite = Channel.CreateBounded<(WorkItem Item, byte[] Line)>(8 * spec.BatchSize);
            var read = AddStage("read", 1, () => 0);
            var prepare = AddStage("preprocess", 1, () => toPrepare.Reader.Count);
            var predict = models.Select((m, k) => AddStage(m.Name, replicaCounts[k], () => toModel[k].Reader.Count * spec.BatchSize)).ToList();
            var post = AddStage("postprocess", 1, () => toPost.Reader.Count * spec.BatchSize);
            var write = AddStage("write", 1, () => toWrite.Reader.Count);
            // Each stage reports the queue in front of it (read has none: it pulls from the file).

            var token = stop.Token;
            var tasks = new List<Task>
            {
                Pipe(LeaseLoop(spec, shards.Writer, drain, token), shards.Writer),
                Pipe(ReadLoop(source, shards.Reader, toPrepare.Writer, toWrite.Writer, read, token), toPrepare.Writer),
                Pipe(PrepareLoop(spec, models, toPrepare.Reader, toModel[0].Writer, toWrite.Writer, prepare, token), toModel[0].Writer),
            };
            for (var k = 0; k < models.Count; k++)
            {
                var m = k;   // the lambdas run later: capture this stage, not the loop variable
                var next = m + 1 < models.Count ? toModel[m + 1].Writer : toPost.Writer;
                var replicas = Enumerable.Range(0, replicaCounts[m]).Select(_ => Task.Run(() => PredictLoop(models, m, toModel[m].Reader, next, predict[m], token), token)).ToList();
                tasks.Add(Pipe(Task.WhenAll(replicas), next));
            }
            tasks.Add(Pipe(PostLoop(models, toPost.Reader, toWrite.Writer, post, token), toWrite.Writer));
            var writer = WriteLoop(join.JobFolder, spec.OutputFormat, toWrite.Reader, write, () => committed++, token);
            tasks.Add(writer);
            var heartbeat = HeartbeatLoop(spec, token);

            try
            {
                // The first stage to fail stops the others (they would otherwise wait on a queue nobody drains).
                foreach (var t in tasks) _ = t.ContinueWith(_ => stop.Cancel(), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                await Task.WhenAll(tasks);
            }
            catch when (abort.IsCancellationRequested)
            {
                reason = "stopped";
            }
            catch (Exception)
            {
                stop.Cancel();
                await Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
                var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.GetBaseException()).FirstOrDefault(e => e is not OperationCanceledException)
                    ?? tasks.First(t => t.IsFaulted).Exception!.GetBaseException();
                reason = $"error: {first.Message}";
                Log?.Invoke($"{Id}: {reason}\n{first}");
                throw new InvalidOperationException($"worker {Id} stopped: {first.Message}", first);
            }
            finally
            {
                stop.Cancel();
                await heartbeat.ContinueWith(_ => { }, TaskScheduler.Default);
                if (drain.IsCancellationRequested && reason == "finished" && !_jobFinished) reason = "drained";
                // Anything still held was not finished (abort or error): give it back without costing an attempt when preempted.
                foreach (var held in _held.Values)
                    try { await _coordinator.ReleaseAsync(Id, held.Held, reason == "stopped" ? "preempted" : reason, preempted: reason == "stopped", CancellationToken.None); }
                    catch (Exception e) { Log?.Invoke($"{Id}: could not give shard {held.Lease.Shard.Id} back ({e.Message}); its lease will expire"); }
            }
        }
        finally
        {
            foreach (var m in models) m.Dispose();
            try
            {
                // A last report, so the job's summary has this worker's whole pipeline.
                await _coordinator.HeartbeatAsync(Id, [], new WorkerReport([.. _stages.Select(s => s.Report())], Interlocked.Read(ref _records), _restarts), CancellationToken.None);
                await _coordinator.LeaveAsync(Id, reason, CancellationToken.None);
            }
            catch (Exception e) { Log?.Invoke($"{Id}: could not say goodbye ({e.Message})"); }
        }
        Log?.Invoke($"{Id}: {reason}; {committed} shard(s), {_records} record(s)");
        return new WorkerSummary(Id, committed, _records, _restarts, reason, [.. _stages.Select(s => s.Report())]);
    }

    private Stage AddStage(string name, int tasks, Func<int> queue)
    {
        var stage = new Stage(name, tasks, queue);
        _stages.Add(stage);
        return stage;
    }

    private async Task LeaseLoop(InferJobOptions spec, ChannelWriter<ShardLease> shards, CancellationToken drain, CancellationToken stop)
    {
        while (!drain.IsCancellationRequested)
        {
            if (_held.Count >= MaxHeldShards - 1) { await Task.Delay(20, stop); continue; }
            var grant = await Call(c => _coordinator.LeaseAsync(Id, MaxHeldShards - _held.Count, c), stop);
            if (grant.Leases.Count == 0)
            {
                if (grant.Finished) { _jobFinished = true; return; }
                // Others hold the remaining shards; one may come back if its worker dies.
                try { await Task.Delay(TimeSpan.FromMilliseconds(500), drain).WaitAsync(stop); }
                catch (OperationCanceledException) when (drain.IsCancellationRequested && !stop.IsCancellationRequested) { }
                continue;
            }
            foreach (var lease in grant.Leases)
            {
                _held[lease.Token] = new ShardBuffer(lease);
                await shards.WriteAsync(lease, stop);
            }
        }
    }

    private async Task ReadLoop(RecordSource source, ChannelReader<ShardLease> shards, ChannelWriter<WorkItem> next, ChannelWriter<(WorkItem, byte[])> quarantine, Stage stage, CancellationToken stop)
    {
        await foreach (var lease in shards.ReadAllAsync(stop))
        {
            var started = Stopwatch.GetTimestamp();
            var buffer = _held[lease.Token];
            foreach (var record in source.Read(lease.Shard.FirstRecord, lease.Shard.Records))
            {
                var item = new WorkItem(lease.Shard.Id, record) { Owner = buffer };
                stage.Busy(started, 1);
                if (item.Error is null) await next.WriteAsync(item, stop);
                else await quarantine.WriteAsync((item, QuarantineLine(item)), stop);
                started = Stopwatch.GetTimestamp();
            }
        }
    }

    private async Task PrepareLoop(InferJobOptions spec, IReadOnlyList<IModelStage> models, ChannelReader<WorkItem> input, ChannelWriter<List<WorkItem>> next,
        ChannelWriter<(WorkItem, byte[])> quarantine, Stage stage, CancellationToken stop)
    {
        var batch = new List<WorkItem>(spec.BatchSize);
        while (true)
        {
            if (!input.TryRead(out var item))
            {
                // Nothing waiting: send what we have rather than hold records back, then wait.
                if (batch.Count > 0 && !await WaitBriefly(input, stop))
                {
                    await next.WriteAsync(batch, stop);
                    batch = new List<WorkItem>(spec.BatchSize);
                }
                if (!await input.WaitToReadAsync(stop)) break;
                continue;
            }
            var started = Stopwatch.GetTimestamp();
            item.Prepared = new object?[models.Count];
            item.Outputs = new object?[models.Count];
            for (var k = 0; k < models.Count && item.Error is null; k++)
                try { if (models[k] is not DagStage { Input: >= 0 }) item.Prepared[k] = models[k].Prepare(item.Record.Text!); }   // a stage reading another's output prepares it when that is there
                catch (Exception e) { item.Error = $"preprocess ({models[k].Name}): {e.Message}"; }
            stage.Busy(started, 1);
            if (item.Error is not null) { await quarantine.WriteAsync((item, QuarantineLine(item)), stop); continue; }
            batch.Add(item);
            if (batch.Count == spec.BatchSize)
            {
                await next.WriteAsync(batch, stop);
                batch = new List<WorkItem>(spec.BatchSize);
            }
        }
        if (batch.Count > 0) await next.WriteAsync(batch, stop);
    }

    private static async Task<bool> WaitBriefly(ChannelReader<WorkItem> input, CancellationToken stop)
    {
        using var brief = CancellationTokenSource.CreateLinkedTokenSource(stop);
        brief.CancelAfter(TimeSpan.FromMilliseconds(5));
        try { return await input.WaitToReadAsync(brief.Token); }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested) { return false; }
    }

    private async Task PredictLoop(IReadOnlyList<IModelStage> models, int k, ChannelReader<List<WorkItem>> input, ChannelWriter<List<WorkItem>> next, Stage stage, CancellationToken stop)
    {
        var model = models[k];
        var replica = model.CreateReplica();
        try
        {
            await foreach (var batch in input.ReadAllAsync(stop))
            {
                var started = Stopwatch.GetTimestamp();
                if (model is DagStage { Input: >= 0 } dag)
                    foreach (var item in batch.Where(i => i.Error is null))
                        try { item.Prepared[k] = dag.PrepareFrom((DagStage)models[dag.Input], item.Outputs[dag.Input]!); }
                        catch (Exception e) { item.Error = $"{model.Name} could not read the output of {models[dag.Input].Name}: {e.Message}"; }
                var valid = batch.Where(i => i.Error is null).ToList();
                if (valid.Count > 0)
                {
                    try
                    {
                        var outputs = replica.Predict([.. valid.Select(i => i.Prepared[k]!)]);
                        for (var i = 0; i < valid.Count; i++) valid[i].Outputs[k] = outputs[i];
                    }
                    catch (Exception batchError) when (!stop.IsCancellationRequested)
                    {
                        // The replica may be broken: restart it, then find the records the model fails on, one by one.
                        Interlocked.Increment(ref _restarts);
                        Log?.Invoke($"{Id}: {model.Name} replica failed a batch ({batchError.Message}); restarting it and retrying record by record");
                        replica.Dispose();
                        replica = model.CreateReplica();
                        foreach (var item in valid)
                            try { item.Outputs[k] = replica.Predict([item.Prepared[k]!])[0]; }
                            catch (Exception e) { item.Error = $"{model.Name}: {e.Message}"; }
                    }
                }
                stage.Busy(started, batch.Count);
                await next.WriteAsync(batch, stop);
            }
        }
        finally
        {
            replica.Dispose();
        }
    }

    private static async Task PostLoop(IReadOnlyList<IModelStage> models, ChannelReader<List<WorkItem>> input, ChannelWriter<(WorkItem, byte[])> next, Stage stage, CancellationToken stop)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        await foreach (var batch in input.ReadAllAsync(stop))
        {
            var started = Stopwatch.GetTimestamp();
            var lines = new List<(WorkItem, byte[])>(batch.Count);
            foreach (var item in batch)
            {
                if (item.Error is not null) { lines.Add((item, QuarantineLine(item))); continue; }
                buffer.ResetWrittenCount();
                using (var json = new Utf8JsonWriter(buffer))
                {
                    json.WriteStartObject();
                    json.WriteString("id", item.Record.Id);
                    for (var k = 0; k < models.Count; k++) models[k].Write(json, item.Outputs[k]!);
                    json.WriteEndObject();
                }
                lines.Add((item, buffer.WrittenSpan.ToArray()));
            }
            stage.Busy(started, batch.Count);
            foreach (var line in lines) await next.WriteAsync(line, stop);
        }
    }

    private async Task WriteLoop(string jobFolder, OutputFormat format, ChannelReader<(WorkItem Item, byte[] Line)> input, Stage stage, Action committed, CancellationToken stop)
    {
        await foreach (var (item, line) in input.ReadAllAsync(stop))
        {
            var buffer = (ShardBuffer)item.Owner!;
            (item.Error is null ? buffer.Lines : buffer.Quarantine).Add((item.Record.Index, line));
            if (buffer.Received < buffer.Lease.Shard.Records) continue;
            var started = Stopwatch.GetTimestamp();
            var shard = buffer.Lease.Shard;
            if (buffer.Lost)
            {
                Log?.Invoke($"{Id}: shard {shard.Id}'s lease was lost (it expired and another worker has it): output dropped");
                _held.TryRemove(buffer.Lease.Token, out _);
                continue;
            }
            // Part names carry the lease: a late writer whose lease expired can never replace or sit beside the
            // committed part under the same name; readers take only the parts the state lists as committed.
            var name = InferLayout.PartName(shard.Id, buffer.Lease.Token, format);
            if (buffer.Quarantine.Count > 0)
                AtomicFile.WriteLines(Path.Combine(jobFolder, InferLayout.QuarantinePartOf(name)), Ordered(buffer.Quarantine), buffer.Lease.Token);
            var part = Path.Combine(jobFolder, InferLayout.OutputFolder, name);
            if (format == OutputFormat.Parquet) AtomicFile.Write(part, file => ParquetParts.Write(file, Ordered(buffer.Lines)), buffer.Lease.Token);
            else AtomicFile.WriteLines(part, Ordered(buffer.Lines), buffer.Lease.Token);
            stage.Busy(started, (int)shard.Records);
            var now = Stopwatch.GetTimestamp();
            var seconds = Stopwatch.GetElapsedTime(Interlocked.Exchange(ref _lastCommit, now), now).TotalSeconds;
            var outcome = await Call(c => _coordinator.CommitAsync(Id, new ShardCommit(shard.Id, buffer.Lease.Token,
                $"{InferLayout.OutputFolder}/{name}", shard.Records, buffer.Quarantine.Count, seconds), c), stop);
            _held.TryRemove(buffer.Lease.Token, out _);
            if (outcome == CommitOutcome.Committed)
            {
                Interlocked.Add(ref _records, shard.Records);
                committed();
            }
            Log?.Invoke($"{Id}: shard {shard.Id} {outcome} ({buffer.Lines.Count} records, {buffer.Quarantine.Count} quarantined)");
        }
    }

    private static IEnumerable<ReadOnlyMemory<byte>> Ordered(List<(long Index, byte[] Line)> lines) =>
        lines.OrderBy(l => l.Index).Select(l => (ReadOnlyMemory<byte>)l.Line);

    private async Task HeartbeatLoop(InferJobOptions spec, CancellationToken stop)
    {
        var period = TimeSpan.FromSeconds(Math.Max(0.2, spec.LeaseSeconds / 3));
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(period, stop).ContinueWith(_ => { }, TaskScheduler.Default);
            if (stop.IsCancellationRequested) return;
            var held = _held.Values.ToList();
            var report = new WorkerReport([.. _stages.Select(s => s.Report())], Interlocked.Read(ref _records), _restarts);
            try
            {
                var kept = await _coordinator.HeartbeatAsync(Id, [.. held.Select(h => h.Held)], report, stop);
                for (var i = 0; i < held.Count; i++) if (!kept[i]) held[i].Lost = true;
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                Log?.Invoke($"{Id}: heartbeat failed ({e.Message}); retrying");
            }
        }
    }

    private static byte[] QuarantineLine(WorkItem item) => JsonSerializer.SerializeToUtf8Bytes(
        new QuarantinedRecord(item.Record.Id, item.Record.Index, item.Shard, item.Error ?? "unknown"), ToolkitJson.Compact);

    /// <summary>Calls the coordinator, retrying while it is unreachable (restarting) for up to <see cref="CoordinatorGrace"/>.</summary>
    private async Task<T> Call<T>(Func<CancellationToken, Task<T>> call, CancellationToken stop)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(CoordinatorGrace.TotalSeconds * Stopwatch.Frequency);
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try { return await call(stop); }
            catch (Exception e) when (!stop.IsCancellationRequested && IsTransient(e) && Stopwatch.GetTimestamp() < deadline)
            {
                Log?.Invoke($"{Id}: coordinator unreachable ({e.Message}); retrying in {delay.TotalSeconds:F1} s");
                await Task.Delay(delay, stop);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>Whether an exception from a coordinator call is worth retrying (set by the RPC client).</summary>
    public static Func<Exception, bool> IsTransient { get; set; } = e => e is IOException or HttpRequestException or TimeoutException;

    private static Task Pipe(Task producer, object writer) => producer.ContinueWith(t =>
    {
        var error = t.IsFaulted ? t.Exception!.GetBaseException() : null;
        switch (writer)
        {
            case ChannelWriter<ShardLease> w: w.TryComplete(error); break;
            case ChannelWriter<WorkItem> w: w.TryComplete(error); break;
            case ChannelWriter<List<WorkItem>> w: w.TryComplete(error); break;
            case ChannelWriter<(WorkItem, byte[])> w: w.TryComplete(error); break;
        }
        return t;
    }, TaskScheduler.Default).Unwrap();

    private sealed class ShardBuffer(ShardLease lease)
    {
        public ShardLease Lease { get; } = lease;
        public HeldShard Held { get; } = new(lease.Shard.Id, lease.Token);
        public List<(long Index, byte[] Line)> Lines { get; } = [];
        public List<(long Index, byte[] Line)> Quarantine { get; } = [];
        public long Received => Lines.Count + Quarantine.Count;
        public volatile bool Lost;
    }

    private sealed class Stage(string name, int tasks, Func<int> queue)
    {
        private long _busy, _items;

        public void Busy(long started, int items)
        {
            Interlocked.Add(ref _busy, Stopwatch.GetTimestamp() - started);
            Interlocked.Add(ref _items, items);
        }

        public StageReport Report() => new(name, tasks, Interlocked.Read(ref _busy) / (double)Stopwatch.Frequency, Interlocked.Read(ref _items), queue());
    }
}

/// <summary>The folders of a job folder.</summary>
public static class InferLayout
{
    /// <summary>One output part per shard.</summary>
    public const string OutputFolder = "output";
    /// <summary>One quarantine part per shard that had bad records.</summary>
    public const string QuarantineFolder = "quarantine";
    /// <summary>
    /// A shard's part file name for one lease: <c>part-NNNNNN-TOKEN8.jsonl</c> (or <c>.parquet</c>); in <see cref="OutputFolder"/> and,
    /// when it had bad records, <see cref="QuarantineFolder"/> (quarantine parts are always JSONL: records with their reasons).
    /// </summary>
    public static string PartName(long shard, string token, OutputFormat format = OutputFormat.Jsonl) =>
        $"part-{shard:D6}-{token[..Math.Min(8, token.Length)]}.{(format == OutputFormat.Parquet ? "parquet" : "jsonl")}";

    /// <summary>True for a Parquet output part.</summary>
    public static bool IsParquet(string part) => part.EndsWith(".parquet", StringComparison.Ordinal);

    /// <summary>The quarantine part (always JSONL) that goes with an output part.</summary>
    public static string QuarantinePartOf(string outputPart) => Path.Combine(QuarantineFolder, Path.ChangeExtension(Path.GetFileName(outputPart), ".jsonl"));

    /// <summary>The coordinator's SQLite state.</summary>
    public const string StateFile = "state.db";
    /// <summary>Where the coordinator listens (address and, when required, that a token is needed).</summary>
    public const string CoordinatorFile = "coordinator.json";
}

/// <summary>A record that could not be processed, and why.</summary>
public sealed record QuarantinedRecord(string? Id, long Record, long Shard, string Reason);

/// <summary>What one worker did.</summary>
public sealed record WorkerSummary(string Worker, int Shards, long Records, int ReplicaRestarts, string Reason, IReadOnlyList<StageReport> Stages);
