using Toolkit.Checkpoints;
using Toolkit.BatchInference;
using Toolkit.Comm;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The language-model stages of batch inference on a model trained by paro train: its checkpoint (which describes its
/// model) read whole, scoring and generation through real jobs.
/// </summary>
public sealed class GptStageTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-gpt-stage-");

    public void Dispose() => _folder.Dispose();

    private async Task<string> TrainedCheckpoint()
    {
        var run = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Sharding = new() { Strategy = "GGG" }, Model = new() { Name = "tiny" }, Steps = 2,
            Checkpoint = new() { Every = 2 }, Launch = new() { RunsDirectory = _folder.Path },
        });
        return Path.Combine(run.RunPath, "checkpoints", "step-2");
    }

    [Fact]
    public async Task ReadParameters_EqualWhatATrainerResumedFromTheCheckpointHolds()
    {
        var checkpoint = await TrainedCheckpoint();
        var flat = CheckpointManifest.ReadParameters(checkpoint);
        Assert.Equal(GptConfig.Tiny.ParameterCount, flat.Length);
        // Another plan (NNN on 2 ranks) resumes from it and gathers its parameters through its own collectives.
        var gathered = InProcessCluster.Run(2, 2, comm =>
        {
            using var model = new Gpt(GptConfig.Tiny);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse("NNN"), 2), comm);
            trainer.LoadCheckpoint(checkpoint);
            return trainer.GatherParameters();
        });
        Assert.Equal(flat, gathered[0]);
        var source = ModelSource.Resolve(checkpoint);
        Assert.Equal(ModelSourceKind.Checkpoint, source.Kind);
        Assert.Equal(GptConfig.Tiny, source.Config);
        // the checkpoint's weights, not the seed's
        using var built = source.Load(seed: 99);
        using (TorchSharp.torch.NewDisposeScope())
            Assert.Equal(flat, built.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()));
    }

    [Fact]
    public async Task ScoreAndGenerate_WithTheTrainedWeights()
    {
        var checkpoint = await TrainedCheckpoint();
        var input = Inputs.Jsonl(_folder.Path, 24);
        var spec = new InferJobOptions
        {
            Data = new() { Input = input },
            Models = new() { Model = new() { Name = "tiny" }, BatchSize = 8 },
            Scheduling = new() { Workers = 1, ShardSize = 12 },
            Launch = InProcess(_folder.Path),
        };

        var trained = await InferJob.RunAsync(spec with {
            Models = spec.Models with { Pipeline = InferPipeline.Score, Model = new() { Name = checkpoint } },
        });
        var untrained = await InferJob.RunAsync(spec with {
            Models = spec.Models with { Pipeline = InferPipeline.Score },
        });
        double[] Scores(InferResult r) => [.. InferOutput.Rows(r.JobFolder).OrderBy(e
            => e.GetProperty("id").GetString()).Select(e => e.GetProperty("score").GetDouble())];
        Assert.Equal(24, Scores(trained).Length);
        Assert.NotEqual(Scores(untrained), Scores(trained));   // the checkpoint's weights were used

        var generated = await InferJob.RunAsync(spec with {
            Models = spec.Models with { Pipeline = InferPipeline.Generate, Model = new() { Name = checkpoint },
                MaxNewTokens = 16 },
        });
        Assert.True(InferOutput.Verify(generated.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var rows = InferOutput.Rows(generated.JobFolder).ToList();
        Assert.Equal(24, rows.Count);
        foreach (var row in rows)
        {
            // The byte tokenizer: a token is a byte, and the newline it stops at is left out of the text.
            var tokens = row.GetProperty("generation_tokens").GetInt32();
            var text = row.GetProperty("generation").GetString()!;
            Assert.InRange(tokens, 0, 16);
            // a byte is at most one character
            Assert.InRange(text.Length, tokens == 0 ? 0 : 1, tokens);
            Assert.DoesNotContain('\n', text);
            Assert.True(row.GetProperty("generation_logprob").GetDouble() <= 0);
        }
        Assert.True(rows.Sum(r => r.GetProperty("generation_tokens").GetInt32()) >= 24,
            "the model generated almost nothing");
    }

    [Fact]
    public async Task ACheckpointWithoutItsModel_IsRefusedBeforeTheJobStarts_NamingWhatToGive()
    {
        var checkpoint = await TrainedCheckpoint();
        Directory.Delete(Path.Combine(checkpoint, ModelSource.DescriptionFolder), recursive: true);
        var spec = new InferJobOptions {
            Data = new() { Input = Inputs.Jsonl(_folder.Path, 4) },
            Models = new() { Pipeline = InferPipeline.Score, Model = new() { Name = checkpoint } },
        };
        var e = Assert.Throws<InvalidDataException>(spec.Check);
        Assert.Contains("--resume", e.Message);
        var generate = spec with {
            Models = spec.Models with { Model = new() { Name = "tiny" }, Pipeline = InferPipeline.Generate,
                MaxNewTokens = -1 },
        };
        Assert.Equal("MaxNewTokens", Assert.Throws<ArgumentOutOfRangeException>(generate.Check).ParamName);
        Assert.Equal("Name",
            Assert.Throws<ArgumentException>((spec with {
                Models = spec.Models with { Pipeline
                = InferPipeline.Embed },
            }).Check).ParamName);   // --model
    }
}
