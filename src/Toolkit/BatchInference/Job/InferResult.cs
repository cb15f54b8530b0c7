using Toolkit.Reporting;

namespace Toolkit.BatchInference;

/// <summary>A job folder's <c>config.json</c>.</summary>
internal sealed record InferConfig(string Kind, InferJobOptions? Options);

/// <summary>A job folder's <c>coordinator.json</c>: where its coordinator listens, and the SHA-256 fingerprint of the
/// certificate it serves TLS with (null: cleartext).</summary>
internal sealed record CoordinatorAddress(string Address, string? Fingerprint, int ProcessId);

/// <summary>The outcome of a batch-inference job.</summary>
public sealed record InferResult(string RunId, string JobFolder, string State, long Records, long OutputRecords,
    long Quarantined, int Shards, int ShardsDone,
    IReadOnlyList<FailedShard> Failed, double Seconds, double RecordsPerSecond, int WorkersStarted, int WorkersDied,
        int ReplicaRestarts, int Rejected,
    string? Bottleneck, IReadOnlyList<StageReport> Stages, IReadOnlyList<WorkerInfo> Workers) : IFacts
{
    /// <inheritdoc/>
    public string Title => $"batch inference {RunId}: {State}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts()
    {
        var facts = new List<(string, string)>
        {
            ("job folder", JobFolder),
            ("records",
                $"{Records:N0}: {OutputRecords:N0} written, {Quarantined:N0} " +
                    $"quarantined, {Records - OutputRecords - Quarantined:N0} not done"),
            ("shards", $"{ShardsDone}/{Shards} done, {Failed.Count} failed"),
            ("time", $"{Seconds:F1} s, {RecordsPerSecond:F1} records/s"),
            ("workers",
                $"{WorkersStarted} started, {WorkersDied} died; replica restarts {ReplicaRestarts}; rejected " +
                    $"calls {Rejected}"),
            ("bottleneck", Bottleneck ?? "(no stage reports)"),
        };
        facts.AddRange(Workers.Where(w => w.Records > 0).Select(w => ($"worker {w.Id}",
            $"{w.Records:N0} records, {w.Throughput:F1} records/s{(w.Left is null ? "" : $", {w.Left}")}")));
        facts.AddRange(Failed.Select(f => ($"failed shard {f.Shard}",
            $"records {f.FirstRecord}..{f.FirstRecord + f.Records - 1}, {f.Attempts} attempts: {f.Reason}")));
        return facts;
    }
}
