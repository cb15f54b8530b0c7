using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// A batch-inference worker: leases shards from the coordinator and runs them through a pipeline of concurrent stages
/// joined by bounded channels (read → preprocess → each model with its replicas → postprocess → write,
/// <see cref="RecordStages"/>), so reading, tokenising, predicting and writing overlap and the next shard is read while
/// the last one is still being predicted. A finished shard's output is written atomically (<see cref="AtomicFile"/>)
/// and only then committed: together with the coordinator's idempotent commit, every record is in the output exactly
/// once.
/// <para>Faults: a record that cannot be read, preprocessed or predicted is quarantined with its reason (a failed batch
/// is retried record by record after the replica is restarted); a worker that dies loses its leases when they expire; a
/// drain (SIGTERM) stops leasing, finishes the held shards and leaves; an abort gives the held shards back as
/// preempted, which costs them no attempt.</para>
/// </summary>
internal sealed class InferenceWorker
{
    private readonly ICoordinator _coordinator;
    private readonly Func<InferJobOptions, IReadOnlyList<IModelStage>> _models;
    // By lease token: a shard leased again is another buffer.
    private readonly ConcurrentDictionary<string, ShardBuffer> _held = new();
    private readonly List<PipelineStage> _stages = [];
    private RecordStages? _recordStages;
    private long _records;
    private int _committed;
    private long _lastCommit;
    private volatile bool _jobFinished;
    private string _reason = "finished";

    /// <summary>A worker named <paramref name="id"/> working for <paramref name="coordinator"/>.</summary>
    /// <param name="coordinator">The coordinator (in-process or a gRPC client).</param>
    /// <param name="id">A name unique within the job.</param>
    /// <param name="models">Creates the model stages (default: what the spec names, <see cref="ModelStages.Create"/>).
    /// </param>
    public InferenceWorker(ICoordinator coordinator, string id,
        Func<InferJobOptions, IReadOnlyList<IModelStage>>? models = null) =>
        (_coordinator, Id, _models) = (coordinator, id, models ?? ModelStages.Create);

    /// <summary>The worker's name.</summary>
    public string Id { get; }

    /// <summary>How long the worker keeps retrying a coordinator it cannot reach before it gives up.</summary>
    public TimeSpan CoordinatorGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether the job is known finished: a coordinator gone then is not retried.</summary>
    public Func<bool>? JobFinished { get; init; }

    /// <summary>Most shards held at once (the one being finished and the ones read ahead).</summary>
    public int MaxHeldShards { get; init; } = 3;

    /// <summary>Called with the seconds stalled when this worker has held shards for <c>--stall-seconds</c> (and two
    /// heartbeats more, so the coordinator has taken them back) without its pipeline moving a record: a worker process
    /// exits then, so that whatever runs it (its rank, a Kubernetes Job, an operator) starts it again; a hung model
    /// call does not come back. Null (in-process workers): the coordinator's pool abandons it.</summary>
    public Action<double>? OnStalled { get; init; }

    /// <summary>Writes progress lines (joined, shard committed, left), or null.</summary>
    public Action<string>? Log { get; init; }

    private int Restarts => _recordStages?.Restarts ?? 0;

    /// <summary>
    /// Runs until the job is finished, <paramref name="drain"/> is signalled and the held shards are done, or
    /// <paramref name="abort"/>.
    /// </summary>
    /// <returns>What the worker did.</returns>
    public async Task<WorkerSummary> RunAsync(CancellationToken drain = default, CancellationToken abort = default)
    {
        var (spec, jobFolder, source, models) = await StartAsync(abort);
        try
        {
            await RunPipelineAsync(spec, jobFolder, source, models, drain, abort);
        }
        finally
        {
            foreach (var m in models) m.Dispose();
            await SayGoodbyeAsync();
        }
        Log?.Invoke($"{Id}: {_reason}; {_committed} shard(s), {_records} record(s)");
        return new WorkerSummary(Id, _committed, _records, Restarts, _reason, [.. _stages.Select(s => s.Report())]);
    }

    /// <summary>Joins the job and opens its input and models; a worker that cannot start leaves with the
    /// error.</summary>
    private async Task<(InferJobOptions, string, RecordSource, IReadOnlyList<IModelStage>)> StartAsync(
        CancellationToken abort)
    {
        var hello = new WorkerHello(Id, Environment.MachineName, Environment.ProcessId);
        var join = await Call(c => _coordinator.JoinAsync(hello, c), abort);
        var spec = JsonSerializer.Deserialize<InferJobOptions>(join.SpecJson, ToolkitJson.Options)!;
        try
        {
            var source = RecordSource.Open(spec);
            var models = _models(spec);
            var stages = string.Join(", ", models.Select(m => $"{m.Name} x{Replicas(spec, m)}"));
            Log?.Invoke($"{Id}: joined; {source.Count} records, models {stages} replica(s)");
            return (spec, join.JobFolder, source, models);
        }
        catch (Exception e)
        {
            try { await _coordinator.LeaveAsync(Id, $"error: {e.Message}", CancellationToken.None); }
            catch (Exception) { }
            throw new InvalidOperationException($"worker {Id} could not start: {e.Message}", e);
        }
    }

    private static int Replicas(InferJobOptions spec, IModelStage model) =>
        model is DagStage dag ? dag.Stage.Replicas : spec.Models.Replicas;

    /// <summary>
    /// Runs the pipeline to its end and sets <see cref="_reason"/>: finished, drained, stopped (aborted) or the first
    /// stage's error (the others are stopped, since they would wait on a queue nobody drains, and the error is thrown).
    /// Shards still held are given back.
    /// </summary>
    private async Task RunPipelineAsync(InferJobOptions spec, string jobFolder, RecordSource source,
        IReadOnlyList<IModelStage> models, CancellationToken drain, CancellationToken abort)
    {
        _lastCommit = Stopwatch.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(abort);
        var tasks = StartPipeline(spec, jobFolder, source, models, drain, stop.Token);
        // heartbeats and the stall watch outlive every stage: a stage hung in the model still makes the worker leave
        using var beat = CancellationTokenSource.CreateLinkedTokenSource(abort);
        var heartbeat = HeartbeatLoop(spec, beat.Token);
        var reason = "finished";
        try
        {
            foreach (var t in tasks)
                _ = t.ContinueWith(_ => stop.Cancel(), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted,
                    TaskScheduler.Default);
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
            var failed = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.GetBaseException()).ToList();
            var first = failed.FirstOrDefault(e => e is not OperationCanceledException) ?? failed[0];
            reason = CoordinatorCore.IsDiskFull(first) ? $"{CoordinatorCore.DiskFull} {first.Message}"
                : $"error: {first.Message}";
            Log?.Invoke($"{Id}: {reason}\n{first}");
            throw new InvalidOperationException($"worker {Id} stopped: {first.Message}", first);
        }
        finally
        {
            stop.Cancel();
            beat.Cancel();
            await heartbeat.ContinueWith(_ => { }, TaskScheduler.Default);
            if (drain.IsCancellationRequested && reason == "finished" && !_jobFinished) reason = "drained";
            _reason = reason;
            await GiveBackHeldAsync(reason);
        }
    }

    /// <summary>Starts every stage; a stage's channel to the next is completed (with its error) when it ends.</summary>
    private List<Task> StartPipeline(InferJobOptions spec, string jobFolder, RecordSource source,
        IReadOnlyList<IModelStage> models, CancellationToken drain, CancellationToken stop)
    {
        var replicas = models.Select(m => Replicas(spec, m)).ToList();
        var shards = Channel.CreateBounded<ShardLease>(1);
        var toPrepare = Channel.CreateBounded<WorkItem>(4 * spec.Models.BatchSize);
        var toModel = replicas.Select(r => Channel.CreateBounded<List<WorkItem>>(2 * r + 1)).ToList();
        var toPost = Channel.CreateBounded<List<WorkItem>>(4);
        var toWrite = Channel.CreateBounded<(WorkItem Item, byte[] Line)>(8 * spec.Models.BatchSize);
        // Each stage reports the queue in front of it (read has none: it pulls from the file).
        var read = AddStage("read", 1, () => 0);
        var prepare = AddStage("preprocess", 1, () => toPrepare.Reader.Count);
        var predict = models.Select((m, k) => AddStage(m.Name, replicas[k],
            () => toModel[k].Reader.Count * spec.Models.BatchSize)).ToList();
        var post = AddStage("postprocess", 1, () => toPost.Reader.Count * spec.Models.BatchSize);
        var write = AddStage("write", 1, () => toWrite.Reader.Count);
        var stages = _recordStages = new RecordStages(Id, Log, replicas.Sum());

        var tasks = new List<Task>
        {
            Pipe(LeaseLoop(shards.Writer, stages.Ready, drain, stop), shards.Writer),
            Pipe(RecordStages.Read(source, shards.Reader, lease => _held[lease.Token], toPrepare.Writer,
                toWrite.Writer, read, stop), toPrepare.Writer),
            Pipe(RecordStages.Prepare(spec.Models.BatchSize, models, toPrepare.Reader, toModel[0].Writer,
                toWrite.Writer, prepare, stop), toModel[0].Writer),
        };
        for (var k = 0; k < models.Count; k++)
        {
            var m = k;   // the lambdas run later: capture this stage, not the loop variable
            var next = m + 1 < models.Count ? toModel[m + 1].Writer : toPost.Writer;
            var copies = Enumerable.Range(0, replicas[m])
                .Select(_ => Task.Run(()
                    => stages.Predict(models, m, toModel[m].Reader, next, predict[m], stop), stop));
            tasks.Add(Pipe(Task.WhenAll(copies.ToList()), next));
        }
        tasks.Add(Pipe(RecordStages.Post(models, toPost.Reader, toWrite.Writer, post, stop), toWrite.Writer));
        tasks.Add(WriteLoop(jobFolder, spec.Data.OutputFormat, toWrite.Reader, write, stop));
        return tasks;
    }

    private PipelineStage AddStage(string name, int tasks, Func<int> queue)
    {
        var stage = new PipelineStage(name, tasks, queue);
        _stages.Add(stage);
        return stage;
    }

    /// <summary>Gives back what is still held (abort or error), without costing an attempt when preempted.</summary>
    private async Task GiveBackHeldAsync(string reason)
    {
        var stopped = reason == "stopped";
        // a full disk is not the shard's fault: no attempt used
        var preempted = stopped || reason.StartsWith(CoordinatorCore.DiskFull, StringComparison.Ordinal);
        foreach (var held in _held.Values)
            try { await _coordinator.ReleaseAsync(Id, held.Held, stopped ? "preempted" : reason, preempted, default); }
            catch (Exception e)
            {
                Log?.Invoke(
                    $"{Id}: could not give shard {held.Lease.Shard.Id} back ({e.Message}); its lease will expire");
            }
    }

    /// <summary>A last report, so the job's summary has this worker's whole pipeline, then leaves.</summary>
    private async Task SayGoodbyeAsync()
    {
        try
        {
            var report = new WorkerReport([.. _stages.Select(s => s.Report())], Interlocked.Read(ref _records),
                Restarts);
            await _coordinator.HeartbeatAsync(Id, [], report, CancellationToken.None);
            await _coordinator.LeaveAsync(Id, _reason, CancellationToken.None);
        }
        catch (Exception e) { Log?.Invoke($"{Id}: could not say goodbye ({e.Message})"); }
    }

    private async Task LeaseLoop(ChannelWriter<ShardLease> shards, Task ready, CancellationToken drain,
        CancellationToken stop)
    {
        await ready.WaitAsync(stop);
        while (!drain.IsCancellationRequested)
        {
            if (_held.Count >= MaxHeldShards - 1) { await Task.Delay(20, stop); continue; }
            var grant = await Call(c => _coordinator.LeaseAsync(Id, MaxHeldShards - _held.Count, c), stop);
            if (grant.Leases.Count == 0)
            {
                if (grant.Finished) { _jobFinished = true; return; }
                // Others hold the remaining shards; one may come back if its worker dies.
                try { await Task.Delay(TimeSpan.FromMilliseconds(500), drain).WaitAsync(stop); }
                catch (OperationCanceledException) when (drain.IsCancellationRequested && !stop.IsCancellationRequested)
                {
                }
                continue;
            }
            foreach (var lease in grant.Leases)
            {
                _held[lease.Token] = new ShardBuffer(lease);
                await shards.WriteAsync(lease, stop);
            }
        }
    }

    /// <summary>Collects each shard's lines; a complete shard is written atomically, then committed.</summary>
    private async Task WriteLoop(string jobFolder, OutputFormat format, ChannelReader<(WorkItem Item,
        byte[] Line)> input,
        PipelineStage stage, CancellationToken stop)
    {
        await foreach (var (item, line) in input.ReadAllAsync(stop))
        {
            var buffer = (ShardBuffer)item.Owner!;
            (item.Error is null ? buffer.Lines : buffer.Quarantine).Add((item.Record.Index, line));
            if (buffer.Received < buffer.Lease.Shard.Records) continue;
            var shard = buffer.Lease.Shard;
            if (buffer.Lost)
            {
                Log?.Invoke($"{Id}: shard {shard.Id}'s lease was lost (it expired and another worker has it): " +
                    "output dropped");
                _held.TryRemove(buffer.Lease.Token, out _);
                continue;
            }
            var started = Stopwatch.GetTimestamp();
            var name = WriteParts(jobFolder, format, buffer);
            stage.Busy(started, (int)shard.Records);
            var now = Stopwatch.GetTimestamp();
            var seconds = Stopwatch.GetElapsedTime(Interlocked.Exchange(ref _lastCommit, now), now).TotalSeconds;
            var commit = new ShardCommit(shard.Id, buffer.Lease.Token, $"{InferLayout.OutputFolder}/{name}",
                shard.Records, buffer.Quarantine.Count, seconds);
            var outcome = await Call(c => _coordinator.CommitAsync(Id, commit, c), stop);
            _held.TryRemove(buffer.Lease.Token, out _);
            if (outcome == CommitOutcome.Committed)
            {
                Interlocked.Add(ref _records, shard.Records);
                Interlocked.Increment(ref _committed);
            }
            Log?.Invoke($"{Id}: shard {shard.Id} {outcome} ({buffer.Lines.Count} records, " +
                $"{buffer.Quarantine.Count} quarantined)");
        }
    }

    /// <summary>
    /// Writes a shard's output part (and quarantine part); returns the part's name. Part names carry the lease: a late
    /// writer whose lease expired can never replace or sit beside the committed part under the same name, and readers
    /// take only the parts the state lists as committed.
    /// </summary>
    private static string WriteParts(string jobFolder, OutputFormat format, ShardBuffer buffer)
    {
        var token = buffer.Lease.Token;
        var name = InferLayout.PartName(buffer.Lease.Shard.Id, token, format);
        if (buffer.Quarantine.Count > 0)
            AtomicFile.WriteLines(Path.Combine(jobFolder, InferLayout.QuarantinePartOf(name)),
                Ordered(buffer.Quarantine), token);
        var part = Path.Combine(jobFolder, InferLayout.OutputFolder, name);
        if (format == OutputFormat.Parquet)
            AtomicFile.Write(part, file => ParquetParts.Write(file, Ordered(buffer.Lines)), token);
        else AtomicFile.WriteLines(part, Ordered(buffer.Lines), token);
        return name;
    }

    private static IEnumerable<ReadOnlyMemory<byte>> Ordered(List<(long Index, byte[] Line)> lines) =>
        lines.OrderBy(l => l.Index).Select(l => (ReadOnlyMemory<byte>)l.Line);

    private async Task HeartbeatLoop(InferJobOptions spec, CancellationToken stop)
    {
        var period = TimeSpan.FromSeconds(Math.Max(0.2, spec.Scheduling.LeaseSeconds / 3));
        var (items, since) = (-1L, Stopwatch.GetTimestamp());
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(period, stop).ContinueWith(_ => { }, TaskScheduler.Default);
            if (stop.IsCancellationRequested) return;
            var held = _held.Values.ToList();
            var report = new WorkerReport([.. _stages.Select(s => s.Report())], Interlocked.Read(ref _records),
                Restarts);
            var moved = report.Stages.Sum(s => s.Items);
            if (moved != items || held.Count == 0) (items, since) = (moved, Stopwatch.GetTimestamp());
            var stalled = Stopwatch.GetElapsedTime(since).TotalSeconds;
            if (OnStalled is not null && spec.Scheduling.StallSeconds > 0
                && stalled >= spec.Scheduling.StallSeconds + 2 * period.TotalSeconds)
                OnStalled(stalled);
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

    /// <summary>
    /// Calls the coordinator, retrying while it is unreachable (restarting, <see cref="ICoordinator.IsTransient"/>) for
    /// up to <see cref="CoordinatorGrace"/>.
    /// </summary>
    private async Task<T> Call<T>(Func<CancellationToken, Task<T>> call, CancellationToken stop)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(CoordinatorGrace.TotalSeconds * Stopwatch.Frequency);
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try { return await call(stop); }
            catch (Exception e) when (!stop.IsCancellationRequested && _coordinator.IsTransient(e)
                && Stopwatch.GetTimestamp() < deadline && JobFinished?.Invoke() != true)
            {
                Log?.Invoke($"{Id}: coordinator unreachable ({e.Message}); retrying in {delay.TotalSeconds:F1} s");
                await Task.Delay(delay, stop);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

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
}

/// <summary>What one worker did.</summary>
internal sealed record WorkerSummary(string Worker, int Shards, long Records, int ReplicaRestarts, string Reason,
    IReadOnlyList<StageReport> Stages);
