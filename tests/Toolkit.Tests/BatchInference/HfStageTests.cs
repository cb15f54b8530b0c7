using Toolkit.BatchInference;
using Toolkit.LlamaCpp;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// Batch inference on a Hugging Face Llama folder, checked against llama.cpp on the same weights: each record's score
/// (mean natural-log likelihood per predicted token of its tokens) equals llama.cpp's to 1e-4, and generation with
/// temperature 0 equals llama.cpp's greedy decoding, through real jobs.
/// </summary>
public sealed class HfStageTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-hf-stage-");

    public HfStageTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task ScoreAndGreedyGenerate_EqualLlamaCpp()
    {
        var model = TinyModels.Write(_folder.Path, "llama");
        var input = Inputs.Jsonl(_folder.Path, 12);
        var spec = new InferJobOptions
        {
            Data = new() { Input = input },
            Models = new() { Model = new() { Name = model }, BatchSize = 4 },
            Scheduling = new() { Workers = 1, ShardSize = 6 },
            Launch = InProcess(_folder.Path),
        };
        var scored = await InferJob.RunAsync(spec with {
            Models = spec.Models with { Pipeline = InferPipeline.Score },
        });
        var generated = await InferJob.RunAsync(spec with {
            Models = spec.Models with { Pipeline = InferPipeline.Generate, Sampling = new() { Temperature = 0 },
                MaxNewTokens = 10 },
        });

        using var hf = HfModel.Open(model);
        var gguf = Path.Combine(_folder.Path, "llama.gguf");
        GgufWriter.Write(hf, gguf);
        using var reference = LlamaCppModel.Load(gguf, threads: 2, context: 64);
        var texts = File.ReadLines(input).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty("id").GetString()!, e => e.GetProperty("text").GetString()!);
        var stop = hf.Tokenizer.EosIds.Select(i => (int)i).ToHashSet();
        foreach (var row in InferOutput.Rows(scored.JobFolder))
        {
            var tokens = hf.Tokenizer.Encode(texts[row.GetProperty("id").GetString()!]).Select(t => (int)t).ToArray();
            var logits = reference.Logits(tokens);
            var expected = Enumerable.Range(0, tokens.Length - 1).Average(t => LogSoftmax(logits[t], tokens[t + 1]));
            Assert.Equal(expected, row.GetProperty("score").GetDouble(), 4);
        }
        foreach (var row in InferOutput.Rows(generated.JobFolder))
        {
            var prompt = hf.Tokenizer.Encode(texts[row.GetProperty("id").GetString()!]).Select(t => (int)t).ToArray();
            var greedy = reference.Greedy(prompt, 10, stop);
            var continuation = greedy.Count > 0 && stop.Contains(greedy[^1]) ? greedy[..^1] : greedy;
            Assert.Equal(hf.Tokenizer.Decode(continuation.Select(t => (long)t)),
                row.GetProperty("generation").GetString());
            Assert.Equal(continuation.Count, row.GetProperty("generation_tokens").GetInt32());
        }
        Assert.Equal(12, InferOutput.Rows(generated.JobFolder).Count());
    }

    private static double LogSoftmax(float[] logits, int token)
    {
        var max = logits.Max();
        return logits[token] - max - Math.Log(logits.Sum(v => Math.Exp(v - max)));
    }
}
