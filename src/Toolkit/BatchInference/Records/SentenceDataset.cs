using System.Text;
using System.Text.Json;
using Toolkit.Data;

namespace Toolkit.BatchInference;

/// <summary>
/// Generates batch-inference inputs: records <c>{"id": "r0000042", "text": ...}</c> of one to four sentences
/// from the synthetic stories (so lengths vary as real text does), with, if asked, a malformed record every
/// <c>badEvery</c> records (cycling through: not JSON, no text, a text that is a number, an empty line) to
/// exercise quarantine. <c>datasets/infer/sentences-2k.jsonl</c> is seed 1, 2000 records, a bad one every 400.
/// </summary>
public static class SentenceDataset
{
    /// <summary>Writes <paramref name="records"/> records to <paramref name="path"/> (JSONL).</summary>
    public static void Write(string path, int records, int seed = 1, int badEvery = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(records);
        var sentences = SyntheticCorpus.Generate(seed, Math.Max(50, records / 4 + 1))
            .Split(['.', '!', '?'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(s => s.Length > 3).Select(s => s + ".").ToArray();
        var random = new Random(seed);
        using var file = new StreamWriter(path, append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        var bad = 0;
        for (var i = 0; i < records; i++)
        {
            var id = $"r{i:D7}";
            if (badEvery > 0 && i % badEvery == badEvery - 1)
            {
                file.WriteLine((bad++ % 4) switch
                {
                    0 => $"{{\"id\": \"{id}\", \"text\": \"unterminated",
                    1 => $"{{\"id\": \"{id}\"}}",
                    2 => $"{{\"id\": \"{id}\", \"text\": 42}}",
                    _ => "",
                });
                continue;
            }
            var start = random.Next(sentences.Length);
            var text = string.Join(' ', Enumerable.Range(0, 1 + random.Next(4)).Select(k => sentences[(start + k) % sentences.Length]));
            file.WriteLine(JsonSerializer.Serialize(new { id, text }, Runtime.ToolkitJson.Compact));
        }
    }
}
