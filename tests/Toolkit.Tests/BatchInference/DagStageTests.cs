using Toolkit.BatchInference;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>Pipelines the user declares as a DAG (<c>--stages</c>): the declaration's rules, and real jobs whose stages
/// read each other's outputs.</summary>
public sealed class DagStageTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-dag-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Parse_OrdersStagesAfterTheirInputs_WithNamesAndReplicas()
    {
        var stages = InferStages.Parse("topic=classify(emb), emb=embed*2, score", defaultReplicas: 3);
        Assert.Equal(["emb", "topic", "score"], stages.Select(s => s.Name));
        Assert.Equal([2, 3, 3], stages.Select(s => s.Replicas));
        Assert.Equal([null, "emb", null], stages.Select(s => s.Input));
        Assert.Equal(["embed", "classify", "score"], stages.Select(s => s.Model));
        Assert.False(InferStages.Prefixed(stages[2]));
        Assert.True(InferStages.Prefixed(stages[0]));
    }

    [Theory]
    [InlineData("emb=embed,topic=classify", "reads another stage's vectors")]
    [InlineData("a=embed,b=score(a)", "reads text, but 'a' (embed) gives vectors")]
    [InlineData("a=generate(b),b=generate(a)", "in a cycle")]
    [InlineData("a=score,b=score(a)", "gives nothing another stage can read")]
    [InlineData("x=foo", "unknown model 'foo'")]
    [InlineData("a=embed*0", "replicas must be a whole number from 1 to 64")]
    [InlineData("a=embed*two", "replicas must be a whole number")]
    [InlineData("a=embed,a=score", "two stages are named 'a'")]
    [InlineData("a=embed,b=classify(zz)", "reads 'zz', which is not a stage")]
    [InlineData("embed,,score", "'' is not a stage")]
    [InlineData("b=classify()", "must name the stage it reads")]
    [InlineData("write=embed", "names one of the worker's own stages")]
    public void Parse_RefusesWhatCannotRun_SayingWhy(string declaration, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => InferStages.Parse(declaration));
        Assert.Contains(expected, e.Message);
        Assert.Equal(nameof(InferModelOptions.Stages), e.ParamName);
    }

    [Fact]
    public void Spec_ChecksLabelsAgainstTheStages()
    {
        var spec = new InferJobOptions { Data = new() { Input = Inputs.Jsonl(_folder.Path, 3) } };
        Assert.Contains("at least two labels",
            Assert.Throws<ArgumentException>((spec with {
                Models = spec.Models with { Stages = "e=embed,c=classify(e)", Labels = "only" },
            }).Check).Message);
        Assert.Contains("a label is repeated",
            Assert.Throws<ArgumentException>((spec with {
                Models = spec.Models with { Stages = "e=embed,c=classify(e)", Labels = "a, a" },
            }).Check).Message);
        Assert.Contains("there is none",
            Assert.Throws<ArgumentException>((spec with {
                Models = spec.Models with { Labels = "a,b" },
            }).Check).Message);
        Assert.Contains("--stages has none", Assert.Throws<ArgumentException>((spec with {
            Models = spec.Models with { Stages = "embed", Model = new() { Name = "tiny" } },
        }).Check).Message);
        (spec with { Models = spec.Models with { Stages = "e=embed,c=classify(e)", Labels = "a,b" } }).Check();
    }

    /// <summary>
    /// Embeddings with two replicas, a zero-shot classifier reading them, and the GPT scoring the text beside them:
    /// every record once, with each stage's prefixed fields; a malformed record is quarantined; the classifier's labels
    /// are the declared ones and its similarity is the cosine of the written embedding with that label's.
    /// </summary>
    [Fact]
    public async Task EmbedClassifyAndScore_AsADag_EveryRecordOnce()
    {
        string[] labels = ["weather and rain", "a dog and a cat", "cooking food"];
        var input = Inputs.Jsonl(_folder.Path, 40, i => i == 7 ? "{\"id\":\"bad\"" : i switch
        {
            1 => """{"id":"r00001","text":"It rained all day and the wind was cold."}""",
            2 => """{"id":"r00002","text":"The puppy chased the kitten around the house."}""",
            3 => """{"id":"r00003","text":"She baked bread and cooked a pot of soup."}""",
            _ => null,
        });
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Models = new() { Stages = "emb=embed*2,topic=classify(emb),ppl=score", Labels = string.Join(",", labels),
                Model = new() { Name = "tiny" }, BatchSize = 8 },
            Scheduling = new() { Workers = 1, ShardSize = 16 },
            Launch = InProcess(_folder.Path),
        });
        Assert.Equal(39, result.OutputRecords);
        Assert.Equal(1, result.Quarantined);
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        Assert.Equal(2, result.Stages.Single(s => s.Name == "emb").Tasks);
        Assert.Equal(1, result.Stages.Single(s => s.Name == "topic").Tasks);
        Assert.Equal(39, result.Stages.Single(s => s.Name == "topic").Items);
        using var classifier = new ZeroShotClassifier(labels);
        var byId = InferOutput.Rows(result.JobFolder).ToDictionary(r => r.GetProperty("id").GetString()!);
        foreach (var row in byId.Values)
        {
            Assert.Equal(["id", "emb_embedding", "topic_label", "topic_similarity", "ppl_score"],
                row.EnumerateObject().Select(p => p.Name));
            var embedding = row.GetProperty("emb_embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            using var replica = classifier.CreateReplica();
            var (label, similarity) = ((string, double))replica.Predict([embedding])[0];
            Assert.Equal(label, row.GetProperty("topic_label").GetString());
            Assert.Equal(similarity, row.GetProperty("topic_similarity").GetDouble(), 5);
            Assert.True(row.GetProperty("ppl_score").GetDouble() < 0);
        }
        Assert.Equal("weather and rain", byId["r00001"].GetProperty("topic_label").GetString());
        Assert.Equal("a dog and a cat", byId["r00002"].GetProperty("topic_label").GetString());
        Assert.Equal("cooking food", byId["r00003"].GetProperty("topic_label").GetString());
    }

    /// <summary>Generation feeding two stages: the GPT scores its own continuation and MiniLM embeds it.</summary>
    [Fact]
    public async Task GenerateThenScoreAndEmbedTheContinuation()
    {
        var input = Inputs.Jsonl(_folder.Path, 10, name: "gen.jsonl");
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Models = new() { Stages = "gen=generate,again=score(gen),vec=embed(gen)", Model = new() { Name = "tiny" },
                MaxNewTokens = 8, BatchSize = 4 },
            Scheduling = new() { Workers = 1, ShardSize = 5 },
            Launch = InProcess(_folder.Path),
        });
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var rows = InferOutput.Rows(result.JobFolder).ToList();
        Assert.Equal(10, rows.Count + result.Quarantined);
        Assert.NotEmpty(rows);
        Assert.All(InferOutput.Quarantined(result.JobFolder),
            q => Assert.Contains("again could not read the output of gen",
                q.Reason));   // a continuation too short to score
        foreach (var row in rows)
        {
            Assert.InRange(row.GetProperty("gen_generation_tokens").GetInt32(), 1, 8);
            Assert.True(row.GetProperty("again_score").GetDouble() < 0);
            Assert.Equal(MiniLmEmbedding.Dimensions, row.GetProperty("vec_embedding").GetArrayLength());
        }
    }
}
