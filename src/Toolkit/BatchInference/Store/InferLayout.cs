namespace Toolkit.BatchInference;

/// <summary>The folders and files of a job folder.</summary>
internal static class InferLayout
{
    /// <summary>One output part per shard.</summary>
    public const string OutputFolder = "output";
    /// <summary>One quarantine part per shard that had bad records.</summary>
    public const string QuarantineFolder = "quarantine";
    /// <summary>The coordinator's SQLite state.</summary>
    public const string StateFile = "state.db";
    /// <summary>Where the coordinator listens (address and, when required, that a token is needed).</summary>
    public const string CoordinatorFile = "coordinator.json";
    /// <summary>Names the coordinator that holds the folder (host, process id, its start time).</summary>
    public const string LockFile = "coordinator.lock";
    /// <summary>Where the job stands, replaced atomically by its coordinator every second: what status readers
    /// read (SQLite is the coordinator's alone).</summary>
    public const string StatusFile = "status.json";
    /// <summary>The token workers present, when the coordinator requires one (readable by its owner only).</summary>
    public const string TokenFile = "token";

    /// <summary>The lease-token stand-in in the part names of a record the coordinator quarantined because workers
    /// died on it.</summary>
    public const string Isolated = "isolated";

    /// <summary>
    /// A shard's part file name for one lease: <c>part-NNNNNN-TOKEN8.jsonl</c> (or <c>.parquet</c>); in
    /// <see cref="OutputFolder"/> and, when it had bad records, <see cref="QuarantineFolder"/> (quarantine parts are
    /// always JSONL: records with their reasons).
    /// </summary>
    public static string PartName(long shard, string token, OutputFormat format = OutputFormat.Jsonl) =>
        $"part-{shard:D6}-{token[..Math.Min(8, token.Length)]}." +
        (format == OutputFormat.Parquet ? "parquet" : "jsonl");

    /// <summary>True for a Parquet output part.</summary>
    public static bool IsParquet(string part) => part.EndsWith(".parquet", StringComparison.Ordinal);

    /// <summary>The quarantine part (always JSONL) that goes with an output part.</summary>
    public static string QuarantinePartOf(string outputPart) =>
        Path.Combine(QuarantineFolder, Path.ChangeExtension(Path.GetFileName(outputPart), ".jsonl"));
}

/// <summary>A record that could not be processed, and why.</summary>
public sealed record QuarantinedRecord(string? Id, long Record, long Shard, string Reason)
{
    /// <summary>Its line in a quarantine part (compact JSON, no newline).</summary>
    internal byte[] ToLine() => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(this, Runtime.ToolkitJson.Compact);
}
