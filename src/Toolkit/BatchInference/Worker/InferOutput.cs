using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>Reads a job's output back: rows, quarantined records, and an exactly-once check against the input's ids.</summary>
public static class InferOutput
{
    /// <summary>Every output row (one JSON object per record), part by part.</summary>
    public static IEnumerable<JsonElement> Rows(string jobFolder) => Lines(Path.Combine(jobFolder, InferLayout.OutputFolder));

    /// <summary>Every quarantined record with its reason.</summary>
    public static IEnumerable<QuarantinedRecord> Quarantined(string jobFolder) =>
        Lines(Path.Combine(jobFolder, InferLayout.QuarantineFolder)).Select(e => e.Deserialize<QuarantinedRecord>(Runtime.ToolkitJson.Options)!);

    /// <summary>
    /// Checks the output against the input: every id that the input holds appears exactly once in the output or
    /// in the quarantine (ids absent from a malformed record are counted by record number instead).
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
            var id = row.GetProperty("id").GetString()!;
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

    private static IEnumerable<JsonElement> Lines(string folder)
    {
        if (!Directory.Exists(folder)) yield break;
        foreach (var file in Directory.GetFiles(folder, "part-*.jsonl").Order(StringComparer.Ordinal))
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
public sealed record OutputCheck(long Records, long Rows, long Quarantined, long Missing, long Duplicated, long Unexpected)
{
    /// <summary>Every input record exactly once.</summary>
    public bool ExactlyOnce => Missing == 0 && Duplicated == 0 && Unexpected == 0 && Rows + Quarantined == Records;
}
