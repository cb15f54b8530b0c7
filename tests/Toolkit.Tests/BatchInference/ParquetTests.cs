using System.Text.Json;
using Parquet;
using Parquet.Schema;
using Toolkit.BatchInference;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>Parquet in and out: records read across row groups with malformed rows kept in place, and a real job whose
/// Parquet parts pass the exactly-once check.</summary>
public sealed class ParquetTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-parquet-");

    public void Dispose() => _folder.Dispose();

    /// <summary>Two row groups (600 + 400 rows) of integer ids and texts; row 5 has no text, row 700 no id.</summary>
    private string WriteInput(string name = "in.parquet")
    {
        var path = Path.Combine(_folder.Path, name);
        var id = new DataField<long?>("id");
        var text = new DataField<string>("text");
        using var file = File.Create(path);
        var writer = ParquetWriter.CreateAsync(new ParquetSchema(id, text), file).GetAwaiter().GetResult();
        try
        {
            foreach (var (first, count) in new[] { (0, 600), (600, 400) })
            {
                using var group = writer.CreateRowGroup();
                var ids = Enumerable.Range(first, count).Select(i => i == 700 ? null : (long?)i).ToArray();
                var texts = Enumerable.Range(first,
                    count).Select(i => i == 5 ? null! : $"record number {i} says hello").ToArray();
                group.WriteAsync(id, new ReadOnlyMemory<long?>(ids), null, null, default).GetAwaiter().GetResult();
                group.WriteAsync(text, texts, null).GetAwaiter().GetResult();
            }
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return path;
    }

    [Fact]
    public void ParquetInput_ShardsAcrossRowGroups_MalformedRowsKeepTheirPlace()
    {
        var source = new ParquetSource(WriteInput(), "id", "text");
        Assert.Equal(1000, source.Count);
        var whole = source.Read(0, source.Count).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => (long)i), whole.Select(r => r.Index));
        Assert.Equal(("3", "record number 3 says hello", (string?)null), (whole[3].Id, whole[3].Text, whole[3].Error));
        Assert.Equal(("5", "no 'text' string"), (whole[5].Id, whole[5].Error));
        Assert.Equal((null, "no 'id' (a non-empty string or an integer)"), (whole[700].Id, whole[700].Error));
        foreach (var (first, count) in new[] { (0L, 1L), (590L, 20L), (600L, 400L), (999L, 1L) })
            Assert.Equal(whole.Skip((int)first).Take((int)count), source.Read(first, count));
    }

    [Fact]
    public void ParquetInput_WithoutTheColumns_OrNotParquet_SaysWhy()
    {
        var path = WriteInput();
        var missing = Assert.Throws<InvalidDataException>(() => new ParquetSource(path, "id", "body"));
        Assert.Contains("has no column 'body' (--text-field); its columns are id, text", missing.Message);
        var notParquet = Path.Combine(_folder.Path, "fake.parquet");
        File.WriteAllText(notParquet, "id,text\n1,hello\n");
        Assert.Contains("is not a readable Parquet file",
            Assert.Throws<InvalidDataException>(() => new ParquetSource(notParquet, "id", "text")).Message);
    }

    [Fact]
    public async Task ParquetInAndOut_EveryRecordExactlyOnce_EmbeddingsAsFloatLists()
    {
        var input = WriteInput();
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input, OutputFormat = OutputFormat.Parquet },
            Scheduling = new() { Workers = 2, ShardSize = 250 },
            Launch = InProcess(_folder.Path),
        });
        Assert.Equal(("completed", 998L, 2L), (result.State, result.OutputRecords, result.Quarantined));
        var parts = Directory.GetFiles(Path.Combine(result.JobFolder, InferLayout.OutputFolder), "part-*");
        Assert.Equal(4, parts.Length);
        Assert.All(parts, p => Assert.EndsWith(".parquet", p));
        var check = InferOutput.Verify(result.JobFolder, new ParquetSource(input, "id", "text"));
        Assert.True(check.ExactlyOnce, $"{check}");
        var row = InferOutput.Rows(result.JobFolder).First();
        Assert.Equal(384, row.GetProperty("embedding").GetArrayLength());
        Assert.Equal(["embedding", "id"], row.EnumerateObject().Select(p => p.Name).Order());
        // integer ids in, integer ids out (a 64-bit column)
        Assert.All(InferOutput.Rows(result.JobFolder), r => Assert.Equal(JsonValueKind.Number, r.GetProperty("id")
            .ValueKind));
        // the quarantine parts (JSONL) belong to committed shards
        Assert.Equal(0, InferOutput.RemoveUncommitted(result.JobFolder));
    }
}
