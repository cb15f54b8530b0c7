using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>What an output row holds besides the models' outputs: the id in its input type, and the input columns
/// <c>--keep-columns</c> carries through (or the reason a record lacking one was quarantined).</summary>
public sealed class OutputRowTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-rows-");

    public void Dispose() => _folder.Dispose();

    private Task<InferResult> Run(string input, OutputFormat format, string? keep = null) => InferJob.RunAsync(new()
    {
        Data = new() { Input = input, OutputFormat = format, KeepColumns = keep },
        Models = new() { Pipeline = InferPipeline.Score, Model = new() { Name = "tiny" } },
        Scheduling = new() { Workers = 1, ShardSize = 20 },
        Launch = InProcess(_folder.Path),
    });

    /// <summary>JSONL ids keep their type: a number stays a number (as written), a string stays a string, even one
    /// that looks like a number; a Parquet part (one type per column) whose ids are mixed holds them as text.</summary>
    [Theory]
    [InlineData(OutputFormat.Jsonl)]
    [InlineData(OutputFormat.Parquet)]
    public async Task JsonlIds_KeepTheirType_InEveryOutputFormat(OutputFormat format)
    {
        // records 0-19 (shard 0): even ones numeric ids past 2^53 (a double would round them), odd ones string ids
        // that look like numbers; records 20-39 (shard 1): numeric ids only
        static bool Numeric(int i) => i % 2 == 0 || i >= 20;
        static string Id(int i) => Numeric(i) ? $"{9007199254740993L + i}" : $"{i}";
        var input = Path.Combine(_folder.Path, $"ids-{format}.jsonl");
        File.WriteAllLines(input, Enumerable.Range(0, 40).Select(i =>
            $"{{\"id\": {(Numeric(i) ? Id(i) : $"\"{Id(i)}\"")}, \"text\": \"record {i} is here\"}}"));
        var result = await Run(input, format);
        Assert.Equal(("completed", 40L), (result.State, result.OutputRecords));
        var check = InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text"));
        Assert.True(check.ExactlyOnce, $"{check}");
        var kinds = InferOutput.Rows(result.JobFolder).Select(r => r.GetProperty("id"))
            .ToDictionary(id => id.ValueKind == JsonValueKind.Number ? id.GetRawText() : id.GetString()!,
                id => id.ValueKind);
        // a Parquet part has one type per column: shard 0 mixes numbers and strings, so it holds its ids as text
        var expected = Enumerable.Range(0, 40).ToDictionary(Id, i =>
            Numeric(i) && (format == OutputFormat.Jsonl || i >= 20) ? JsonValueKind.Number : JsonValueKind.String);
        Assert.Equal(expected.OrderBy(kv => kv.Key, StringComparer.Ordinal),
            kinds.OrderBy(kv => kv.Key, StringComparer.Ordinal));
    }

    /// <summary>Kept columns come through with their JSON values in both formats; a record lacking one, or holding an
    /// object in one, is quarantined naming the column; every record is still there exactly once.</summary>
    [Theory]
    [InlineData(OutputFormat.Jsonl)]
    [InlineData(OutputFormat.Parquet)]
    public async Task KeptColumns_ComeThrough_ARecordLackingOneIsQuarantined(OutputFormat format)
    {
        var input = Path.Combine(_folder.Path, $"keep-{format}.jsonl");
        File.WriteAllLines(input, Enumerable.Range(0, 30).Select(i => i switch
        {
            7 => $"{{\"id\": \"r{i}\", \"text\": \"record {i}\", \"rank\": {i}}}",
            8 => $"{{\"id\": \"r{i}\", \"text\": \"record {i}\", \"source\": {{\"a\": 1}}, \"rank\": {i}}}",
            _ => $"{{\"id\": \"r{i}\", \"text\": \"record {i}\", \"source\": \"s{i % 3}\", \"rank\": {i}, " +
                "\"other\": true}",
        }));
        var result = await Run(input, format, keep: "source, rank");
        Assert.Equal((28L, 2L), (result.OutputRecords, result.Quarantined));
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        foreach (var row in InferOutput.Rows(result.JobFolder))
        {
            Assert.Equal(["id", "rank", "score", "source"], row.EnumerateObject().Select(p => p.Name).Order());
            var i = int.Parse(row.GetProperty("id").GetString()![1..]);
            Assert.Equal(($"s{i % 3}", i), (row.GetProperty("source").GetString(), row.GetProperty("rank").GetInt32()));
        }
        var reasons = InferOutput.Quarantined(result.JobFolder).ToDictionary(q => q.Id!, q => q.Reason);
        Assert.Equal("no 'source' (--keep-columns)", reasons["r7"]);
        Assert.Equal("'source' (--keep-columns) is a JSON Object; a kept column holds a string, a number or an array " +
            "of numbers", reasons["r8"]);
    }

    [Fact]
    public void KeptColumns_ThatACsvHeaderLacks_AreNamed_ACsvValueIsText()
    {
        var input = Path.Combine(_folder.Path, "in.csv");
        File.WriteAllLines(input, ["id,text,lang", "1,hello there,en", "2,bonjour,fr"]);
        var missing = Assert.Throws<InvalidDataException>(() => new CsvSource(input, "id", "text", ["lang", "year"]));
        Assert.Contains("lacks the column 'year' (--keep-columns)", missing.Message);
        var records = new CsvSource(input, "id", "text", ["lang"]).Read(0, 2).ToList();
        Assert.Equal([new("lang", "\"en\""), new("lang", "\"fr\"")], records.SelectMany(r => r.Columns));
    }
}
