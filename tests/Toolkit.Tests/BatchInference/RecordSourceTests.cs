using System.Text;
using Toolkit.BatchInference;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>Inputs read as numbered records: shards read from any offset, malformed rows kept in place with their
/// reason, CSV quoting.</summary>
public sealed class RecordSourceTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-records-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Jsonl_ShardsReadFromAnyOffset_MatchAWholeRead()
    {
        // More than one index stride (1024), CRLF endings on some lines, no newline at the end.
        var lines = Enumerable.Range(0,
            2500).Select(i => $"{{\"id\": {i}, \"text\": \"t{i}\"}}" + (i % 3 == 0 ? "\r" : "")).ToList();
        var path = Path.Combine(_folder.Path, "in.jsonl");
        File.WriteAllText(path, string.Join('\n', lines));
        var source = new JsonlSource(path, "id", "text");
        Assert.Equal(2500, source.Count);
        var whole = source.Read(0, source.Count).ToList();
        Assert.All(whole, r => Assert.Equal(($"{r.Index}", $"t{r.Index}", (string?)null), (r.Id, r.Text, r.Error)));
        foreach (var (first, count) in new[] { (0L, 1L), (1023L, 2L), (1024L, 1024L), (2047L, 453L), (2499L, 1L) })
            Assert.Equal(whole.Skip((int)first).Take((int)count), source.Read(first, count));
        Assert.Throws<ArgumentOutOfRangeException>(() => source.Read(2400, 101).ToList());
    }

    [Fact]
    public void Jsonl_MalformedRows_KeepTheirPlace_WithTheirReason()
    {
        var path = Path.Combine(_folder.Path, "bad.jsonl");
        File.WriteAllText(path, string.Join('\n',
            """{"id": "a", "text": "fine"}""", "not json", "", """{"id": "b"}""", """{"id": "c", "text": 3}""",
                "[1, 2]", """{"text": "no id"}""", """{"id": "d", "text": "fine too"}""") + "\n");
        var records = new JsonlSource(path, "id", "text").Read(0, 8).ToList();
        Assert.Equal(8, records.Count);
        Assert.Equal(["a", null, null, "b", "c", null, null, "d"], records.Select(r => r.Id));
        Assert.Null(records[0].Error);
        Assert.StartsWith("not JSON", records[1].Error);
        Assert.Equal("empty line", records[2].Error);
        Assert.Equal("no 'text' string", records[3].Error);
        Assert.Equal("no 'text' string", records[4].Error);
        Assert.Equal("line is a JSON Array, not an object", records[5].Error);
        Assert.Equal("no 'id' (a string or number)", records[6].Error);
        Assert.Equal("fine too", records[7].Text);
    }

    [Fact]
    public void Csv_QuotedFieldsMayHoldCommasQuotesAndNewlines()
    {
        var path = Path.Combine(_folder.Path, "in.csv");
        File.WriteAllText(path,
            "text,id,extra\n\"hello, world\",1,x\n\"she said \"\"hi\"\"\nand left\",2,y\nshort\nunbalanced " +
                "\"quote,3\n,5,z\n", new UTF8Encoding(true));
        var source = new CsvSource(path, "id", "text");
        var records = source.Read(0, source.Count).ToList();
        Assert.Equal(4, records.Count);
        Assert.Equal(("1", "hello, world"), (records[0].Id, records[0].Text));
        Assert.Equal(("2", "she said \"hi\"\nand left"), (records[1].Id, records[1].Text));
        Assert.Equal("1 fields, the header has 3", records[2].Error);
        // An opening quote without its end swallows the rest of the file into one record, which is quarantined, not
        // guessed at.
        Assert.Equal("unbalanced quotes", records[3].Error);
    }

    [Fact]
    public void Csv_WithoutTheNamedColumns_IsRefusedWithTheHeader()
    {
        var path = Path.Combine(_folder.Path, "in.csv");
        File.WriteAllText(path, "key,body\n1,x\n");
        var e = Assert.Throws<InvalidDataException>(() => new CsvSource(path, "id", "text"));
        Assert.Contains("key,body", e.Message);
        Assert.Contains("'id'", e.Message);
    }

    [Fact]
    public void Spec_BadOptions_AreNamed()
    {
        var input = Inputs.Jsonl(_folder.Path, 3);
        new InferJobOptions { Data = new() { Input = input } }.Check();
        Assert.Equal("Input", Assert.Throws<ArgumentException>(() => new InferJobOptions().Check()).ParamName);
        Assert.Equal("Input",
            Assert.Throws<ArgumentException>(()
                => new InferJobOptions { Data = new() { Input = input + ".missing" } }.Check()).ParamName);
        var text = Path.ChangeExtension(input, ".txt");
        File.Copy(input, text);
        Assert.Equal("Format",
            Assert.Throws<ArgumentException>(() => new InferJobOptions {
                Data = new() { Input = text },
            }.Check()).ParamName);
        new InferJobOptions { Data = new() { Input = text, Format = InputFormat.Jsonl } }.Check();
        Assert.Equal("ShardSize", Assert.Throws<ArgumentOutOfRangeException>(() => new InferJobOptions {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 0 },
        }.Check()).ParamName);
        Assert.Equal("MaxWorkers",
            Assert.Throws<ArgumentOutOfRangeException>(() => new InferJobOptions {
                Data = new() { Input = input },
                Scheduling = new() { Workers = 4, MaxWorkers = 2 },
            }.Check()).ParamName);
    }
}

/// <summary>The committed batch-inference sample is what its generator writes.</summary>
public sealed class SentenceDatasetTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-sentences-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void CommittedSample_RegeneratesByteForByte()
    {
        var path = Path.Combine(_folder.Path, "s.jsonl");
        SentenceDataset.Write(path, 2000, seed: 1, badEvery: 400);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Repository.Root, "datasets", "infer", "sentences-2k.jsonl")),
            File.ReadAllBytes(path));
    }
}
