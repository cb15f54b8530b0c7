using Toolkit.BatchInference;

namespace Toolkit.Tests.BatchInference;

/// <summary>Writes the part a lease names, as a worker would, for tests that drive the coordinator directly.</summary>
internal static class Parts
{
    /// <summary>Writes the JSONL part of <paramref name="lease"/> (a row per record) and returns its commit.</summary>
    public static ShardCommit Write(CoordinatorCore core, ShardLease lease, double seconds)
    {
        var name = $"{InferLayout.OutputFolder}/{InferLayout.PartName(lease.Shard.Id, lease.Token)}";
        var path = Path.Combine(core.JobFolder, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, Enumerable.Range(0, (int)lease.Shard.Records)
            .Select(i => $$"""{"id":"r{{lease.Shard.FirstRecord + i:D5}}"}"""));
        return new ShardCommit(lease.Shard.Id, lease.Token, name, lease.Shard.Records, 0, seconds);
    }
}
