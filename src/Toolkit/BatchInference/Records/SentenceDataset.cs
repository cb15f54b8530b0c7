using System.Text;
using System.Text.Json;
using Toolkit.Data;

namespace Toolkit.BatchInference;

/// <summary>
/// Generates batch-inference inputs: records <c>{"id": "r0000042", "text": ...}</c> of one to four sentences from the
/// synthetic stories (so lengths vary as real text does), with, if asked, a malformed record every <c>badEvery</c>
/// records (cycling through: not JSON, no text, a text that is a number, an empty line) to exercise quarantine.
/// <c>datasets/infer/sentences-2k.jsonl</c> is seed 1, 2000 records, a bad one every 400.
/// </summary>
internal static class SentenceDataset
{
    /// <summary>Writes <paramref name="records"/> records to <paramref name="path"/>: JSONL, or Parquet when the name
    /// ends in <c>.parquet</c> (its malformed records lack their text).</summary>
    public static void Write(string path, int records, int seed = 1, int badEvery = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(records);
        if (path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
        {
            WriteParquet(path, Generate(records, seed, badEvery).ToList());
            return;
        }
        using var file = new StreamWriter(path, append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        foreach (var (id, text, bad) in Generate(records, seed, badEvery))
            file.WriteLine(bad switch
            {
                null => JsonSerializer.Serialize(new { id, text }, Runtime.ToolkitJson.Compact),
                0 => $"{{\"id\": \"{id}\", \"text\": \"unterminated",
                1 => $"{{\"id\": \"{id}\"}}",
                2 => $"{{\"id\": \"{id}\", \"text\": 42}}",
                _ => "",
            });
    }

    /// <summary>The records: id and text, or for a malformed one which of the four kinds it is.</summary>
    private static IEnumerable<(string Id, string? Text, int? Bad)> Generate(int records, int seed, int badEvery)
    {
        var sentences = SyntheticCorpus.Generate(seed, Math.Max(50, records / 4 + 1))
            .Split(['.', '!', '?'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(s => s.Length > 3).Select(s => s + ".").ToArray();
        var random = new Random(seed);
        var bad = 0;
        for (var i = 0; i < records; i++)
        {
            var id = $"r{i:D7}";
            if (badEvery > 0 && i % badEvery == badEvery - 1)
            {
                yield return (id, null, bad++ % 4);
                continue;
            }
            var start = random.Next(sentences.Length);
            yield return (id, string.Join(' ', Enumerable.Range(0,
                1 + random.Next(4)).Select(k => sentences[(start + k) % sentences.Length])), null);
        }
    }

    private static void WriteParquet(string path, IReadOnlyList<(string Id, string? Text, int? Bad)> rows)
    {
        var schema = new Parquet.Schema.ParquetSchema(new Parquet.Schema.DataField<string>("id"),
            new Parquet.Schema.DataField<string>("text"));
        var data = rows.Select(r => (IDictionary<string, object?>)new Dictionary<string, object?> { ["id"] = r.Id,
            ["text"] = r.Text }).ToList();
        using var file = File.Create(path);
        Parquet.Serialization.ParquetSerializer.SerializeUntypedAsync(data, schema, file).GetAwaiter().GetResult();
    }
}
