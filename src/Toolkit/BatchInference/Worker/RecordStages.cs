using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;

namespace Toolkit.BatchInference;

/// <summary>
/// The record stages of a worker's pipeline, each a loop from one bounded channel to the next: read → preprocess
/// (batching) → each model with its replicas → postprocess (a JSON line per record). A record a stage cannot handle
/// gets an <see cref="WorkItem.Error"/> and goes to the quarantine channel (read, preprocess) or travels on to be
/// written as a quarantine line (model stages).
/// </summary>
internal sealed class RecordStages
{
    private readonly string _worker;
    private readonly Action<string>? _log;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _restarts, _starting;

    /// <param name="worker">The worker's id (in log lines).</param>
    /// <param name="log">Where log lines go, or null.</param>
    /// <param name="replicas">Model replicas the pipeline creates, over every model.</param>
    public RecordStages(string worker, Action<string>? log, int replicas)
    {
        (_worker, _log, _starting) = (worker, log, replicas);
        if (replicas <= 0) _ready.SetResult();
    }

    /// <summary>Completes once every model replica exists: the worker leases nothing before, so a slow start (model
    /// sessions loading on a busy machine) is never taken for a stall on a shard and never costs the shard an
    /// attempt.</summary>
    public Task Ready => _ready.Task;

    /// <summary>How many model replicas were restarted after failing a batch.</summary>
    public int Restarts => Volatile.Read(ref _restarts);

    /// <summary>Reads each leased shard's records; <paramref name="owner"/> gives the buffer they are collected
    /// in.</summary>
    public static async Task Read(RecordSource source, ChannelReader<ShardLease> shards, Func<ShardLease, object> owner,
        ChannelWriter<WorkItem> next, ChannelWriter<(WorkItem, byte[])> quarantine, PipelineStage stage,
        CancellationToken stop)
    {
        await foreach (var lease in shards.ReadAllAsync(stop))
        {
            var started = Stopwatch.GetTimestamp();
            var buffer = owner(lease);
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

    /// <summary>
    /// Prepares each record for every model that reads the text and batches them; a part batch goes on when nothing
    /// else is waiting, so records are never held back for a batch that would not fill.
    /// </summary>
    public static async Task Prepare(int batchSize, IReadOnlyList<IModelStage> models, ChannelReader<WorkItem> input,
        ChannelWriter<List<WorkItem>> next, ChannelWriter<(WorkItem, byte[])> quarantine, PipelineStage stage,
        CancellationToken stop)
    {
        var batch = new List<WorkItem>(batchSize);
        while (true)
        {
            if (!input.TryRead(out var item))
            {
                if (batch.Count > 0 && !await WaitBriefly(input, stop))
                {
                    await next.WriteAsync(batch, stop);
                    batch = new List<WorkItem>(batchSize);
                }
                if (!await input.WaitToReadAsync(stop)) break;
                continue;
            }
            var started = Stopwatch.GetTimestamp();
            PrepareOne(models, item);
            stage.Busy(started, 1);
            if (item.Error is not null) { await quarantine.WriteAsync((item, QuarantineLine(item)), stop); continue; }
            batch.Add(item);
            if (batch.Count == batchSize)
            {
                await next.WriteAsync(batch, stop);
                batch = new List<WorkItem>(batchSize);
            }
        }
        if (batch.Count > 0) await next.WriteAsync(batch, stop);
    }

    private static void PrepareOne(IReadOnlyList<IModelStage> models, WorkItem item)
    {
        item.Prepared = new object?[models.Count];
        item.Outputs = new object?[models.Count];
        for (var k = 0; k < models.Count && item.Error is null; k++)
        {
            // A stage that reads another stage's output is prepared by its model stage, once that output exists.
            if (models[k] is DagStage { Input: >= 0 }) continue;
            try { item.Prepared[k] = models[k].Prepare(item.Record.Text!); }
            catch (Exception e) { item.Error = $"preprocess ({models[k].Name}): {e.Message}"; }
        }
    }

    private static async Task<bool> WaitBriefly(ChannelReader<WorkItem> input, CancellationToken stop)
    {
        using var brief = CancellationTokenSource.CreateLinkedTokenSource(stop);
        brief.CancelAfter(TimeSpan.FromMilliseconds(5));
        try { return await input.WaitToReadAsync(brief.Token); }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested) { return false; }
    }

    /// <summary>
    /// One replica of model <paramref name="k"/>: predicts each batch. A batch that fails restarts the replica (it may
    /// be broken) and is retried record by record, so only the records the model fails on are quarantined.
    /// </summary>
    public async Task Predict(IReadOnlyList<IModelStage> models, int k, ChannelReader<List<WorkItem>> input,
        ChannelWriter<List<WorkItem>> next, PipelineStage stage, CancellationToken stop)
    {
        var model = models[k];
        var replica = model.CreateReplica();
        if (Interlocked.Decrement(ref _starting) == 0) _ready.TrySetResult();
        try
        {
            await foreach (var batch in input.ReadAllAsync(stop))
            {
                var started = Stopwatch.GetTimestamp();
                if (model is DagStage { Input: >= 0 } dag) PrepareFromInput(models, dag, k, batch);
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
                        Interlocked.Increment(ref _restarts);
                        _log?.Invoke($"{_worker}: {model.Name} replica failed a batch ({batchError.Message}); " +
                            "restarting it and retrying record by record");
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

    private static void PrepareFromInput(IReadOnlyList<IModelStage> models, DagStage dag, int k, List<WorkItem> batch)
    {
        var source = (DagStage)models[dag.Input];
        foreach (var item in batch.Where(i => i.Error is null))
            try { item.Prepared[k] = dag.PrepareFrom(source, item.Outputs[dag.Input]!); }
            catch (Exception e) { item.Error = $"{dag.Name} could not read the output of {source.Name}: {e.Message}"; }
    }

    /// <summary>Writes each record's output line (its id, its kept columns and every model's output), or its
    /// quarantine line.</summary>
    public static async Task Post(IReadOnlyList<IModelStage> models, ChannelReader<List<WorkItem>> input,
        ChannelWriter<(WorkItem, byte[])> next, PipelineStage stage, CancellationToken stop)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        await foreach (var batch in input.ReadAllAsync(stop))
        {
            var started = Stopwatch.GetTimestamp();
            var lines = new List<(WorkItem, byte[])>(batch.Count);
            foreach (var item in batch)
            {
                if (item.Error is not null) { lines.Add((item, QuarantineLine(item))); continue; }
                buffer.ResetWrittenCount();
                try
                {
                    using var json = new Utf8JsonWriter(buffer);
                    json.WriteStartObject();
                    if (item.Record.NumericId)
                    {
                        json.WritePropertyName("id");
                        json.WriteRawValue(item.Record.Id!);
                    }
                    else json.WriteString("id", item.Record.Id);
                    foreach (var (name, value) in item.Record.Columns)
                    {
                        json.WritePropertyName(name);
                        json.WriteRawValue(value, skipInputValidation: true);
                    }
                    for (var k = 0; k < models.Count; k++) models[k].Write(json, item.Outputs[k]!);
                    json.WriteEndObject();
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                {
                    // JSON has no NaN or infinity: such an output would not read back
                    item.Error = $"its output cannot be written: {Unwritable(e)}";
                    lines.Add((item, QuarantineLine(item)));
                    continue;
                }
                lines.Add((item, buffer.WrittenSpan.ToArray()));
            }
            stage.Busy(started, batch.Count);
            foreach (var line in lines) await next.WriteAsync(line, stop);
        }
    }

    private static string Unwritable(Exception e) =>
        e.Message.Contains("NaN", StringComparison.Ordinal)
            || e.Message.Contains("infinity", StringComparison.OrdinalIgnoreCase)
            ? "a model gave NaN or infinity" : e.Message;

    /// <summary>A quarantined record's line: its id, index, shard and reason.</summary>
    public static byte[] QuarantineLine(WorkItem item) =>
        new QuarantinedRecord(item.Record.Id, item.Record.Index, item.Shard, item.Error ?? "unknown").ToLine();
}

/// <summary>One stage of a worker's pipeline: its tasks, the time they were busy, the items done, its queue.</summary>
internal sealed class PipelineStage(string name, int tasks, Func<int> queue)
{
    private long _busy, _items;

    /// <summary>Adds the time since <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp) and the
    /// items.</summary>
    public void Busy(long started, int items)
    {
        Interlocked.Add(ref _busy, Stopwatch.GetTimestamp() - started);
        Interlocked.Add(ref _items, items);
    }

    /// <summary>The stage so far.</summary>
    public StageReport Report() => new(name, tasks, Interlocked.Read(ref _busy) / (double)Stopwatch.Frequency,
        Interlocked.Read(ref _items), queue());
}
