using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>
/// Reads a job's output back: rows, quarantined records, and an exactly-once check against the input's ids. Only the
/// parts the job's state lists as committed are read (a worker whose lease expired may have left a part of its own next
/// to them; <see cref="RemoveUncommitted(string)"/> deletes those).
/// </summary>
public static class InferOutput
{
    /// <summary>An output row's id as the input's text of it (a numeric id is written as a number).</summary>
    internal static string Id(JsonElement id) =>
        id.ValueKind == JsonValueKind.Number ? id.GetRawText() : id.GetString()!;

    /// <summary>Every output row (one JSON object per record, from JSONL or Parquet parts), shard by shard.</summary>
    public static IEnumerable<JsonElement> Rows(string jobFolder) =>
        Committed(jobFolder).SelectMany(s => InferLayout.IsParquet(s.Output!)
            ? ParquetParts.Read(Path.Combine(jobFolder, s.Output!))
            : Lines(Path.Combine(jobFolder, s.Output!)));

    /// <summary>Every quarantined record with its reason.</summary>
    public static IEnumerable<QuarantinedRecord> Quarantined(string jobFolder) =>
        Committed(jobFolder).Where(s => s.Quarantined > 0)
            .SelectMany(s => Lines(Path.Combine(jobFolder, InferLayout.QuarantinePartOf(s.Output!))))
            .Select(e => e.Deserialize<QuarantinedRecord>(Runtime.ToolkitJson.Options)!);

    /// <summary>The committed shards, in input order (a shard split at lease time has a later id than its
    /// neighbours).</summary>
    public static IReadOnlyList<Shard> Committed(string jobFolder) =>
        [.. Shards(jobFolder).Where(s => s.State == ShardState.Done).OrderBy(s => s.FirstRecord)];

    /// <summary>Every shard of the job in <paramref name="jobFolder"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">Not a job folder.</exception>
    private static IReadOnlyList<Shard> Shards(string jobFolder)
    {
        var state = Path.Combine(jobFolder, InferLayout.StateFile);
        if (!File.Exists(state)) throw new DirectoryNotFoundException(
            $"{jobFolder} is not a batch-inference job folder: it has no {InferLayout.StateFile}.");
        using var store = new SqliteShardStore(state);
        return store.Shards();
    }

    /// <summary>Deletes part files that no committed shard names (left by workers whose lease expired); returns how
    /// many.</summary>
    public static int RemoveUncommitted(string jobFolder) => RemoveUncommitted(jobFolder, false, false);

    /// <summary>
    /// Deletes part files that no committed shard names and, with <paramref name="temporaries"/>, the temporary files
    /// of writers that died; with <paramref name="keepLeased"/> (a coordinator that has just adopted its predecessor's
    /// leases), the files of shards still leased stay: their workers may be writing them. Returns how many.
    /// </summary>
    internal static int RemoveUncommitted(string jobFolder, bool temporaries, bool keepLeased)
    {
        var shards = Shards(jobFolder);
        var committed = shards.Where(s => s.State == ShardState.Done)
            .Select(s => Path.GetFileNameWithoutExtension(s.Output!))
            .ToHashSet(StringComparer.Ordinal);   // the output part and its quarantine part
        var leased = keepLeased ? shards.Where(s => s.State == ShardState.Leased).Select(s => s.Id).ToHashSet() : [];
        var removed = 0;
        foreach (var folder in new[] { InferLayout.OutputFolder,
            InferLayout.QuarantineFolder }.Select(f => Path.Combine(jobFolder, f)).Where(Directory.Exists))
        {
            var parts = Directory.GetFiles(folder, "part-*.*")
                .Where(f => !committed.Contains(Path.GetFileNameWithoutExtension(f)));
            var files = temporaries ? parts.Concat(Directory.GetFiles(folder, ".part-*.tmp")) : parts;
            foreach (var file in files.Where(f => ShardOf(Path.GetFileName(f)) is not { } id || !leased.Contains(id)))
            {
                File.Delete(file);
                removed++;
            }
        }
        return removed;
    }

    /// <summary>The shard a part or temporary file belongs to (<c>[.]part-NNNNNN-...</c>), or null.</summary>
    private static long? ShardOf(string name)
    {
        var rest = name.TrimStart('.');
        var dash = rest.IndexOf('-', "part-".Length);
        return rest.StartsWith("part-", StringComparison.Ordinal) && dash > 0
            && long.TryParse(rest["part-".Length..dash], System.Globalization.CultureInfo.InvariantCulture,
                out var id) ? id : null;
    }

    /// <summary>
    /// Checks the output against the input: every id that the input holds appears exactly once in the output or in the
    /// quarantine (ids absent from a malformed record are counted by record number instead).
    /// </summary>
    public static OutputCheck Verify(string jobFolder, RecordSource input)
    {
        var expected = new Dictionary<string, int>();
        var unidentified = new HashSet<long>();
        foreach (var r in input.Read(0, input.Count))
            if (r.Id is null) unidentified.Add(r.Index);
            else expected[r.Id] = expected.GetValueOrDefault(r.Id) + 1;
        var seen = new Dictionary<string, int>();
        long rows = 0, quarantined = 0, unexpected = 0;
        foreach (var row in Rows(jobFolder))
        {
            rows++;
            var id = Id(row.GetProperty("id"));
            seen[id] = seen.GetValueOrDefault(id) + 1;
        }
        foreach (var q in Quarantined(jobFolder))
        {
            quarantined++;
            if (q.Id is null) { if (!unidentified.Remove(q.Record)) unexpected++; }
            else seen[q.Id] = seen.GetValueOrDefault(q.Id) + 1;
        }
        long missing = unidentified.Count, duplicated = 0;
        foreach (var (id, count) in expected)
        {
            var got = seen.GetValueOrDefault(id);
            if (got < count) missing += count - got;
            if (got > count) duplicated += got - count;
        }
        unexpected += seen.Keys.Count(id => !expected.ContainsKey(id));
        return new OutputCheck(input.Count, rows, quarantined, missing, duplicated, unexpected);
    }

    private static IEnumerable<JsonElement> Lines(string file)
    {
        foreach (var line in File.ReadLines(file))
            if (line.Length > 0)
                using (var json = JsonDocument.Parse(line))
                    yield return json.RootElement.Clone();
    }
}

/// <summary>The exactly-once check of a job's output.</summary>
/// <param name="Records">Input records.</param>
/// <param name="Rows">Output rows.</param>
/// <param name="Quarantined">Quarantined records.</param>
/// <param name="Missing">Input records in neither the output nor the quarantine.</param>
/// <param name="Duplicated">Extra copies of input records.</param>
/// <param name="Unexpected">Output ids the input does not hold.</param>
public sealed record OutputCheck(long Records, long Rows, long Quarantined, long Missing, long Duplicated,
    long Unexpected)
{
    /// <summary>Every input record exactly once.</summary>
    public bool ExactlyOnce => Missing == 0 && Duplicated == 0 && Unexpected == 0 && Rows + Quarantined == Records;
}
