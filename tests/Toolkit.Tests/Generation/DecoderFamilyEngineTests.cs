using Toolkit.Generation;
using Toolkit.LlamaCpp;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;
using static TorchSharp.torch;

namespace Toolkit.Tests.Generation;

/// <summary>
/// The generation engine on the Hugging Face families: with fp32 numerics every sampled token's log-probability equals
/// the full forward of the trainer's <see cref="Decoder"/> (so the prefill, the KV cache, grouped-query heads, rotary
/// positions and continuous batching are right) and a mixture of experts routes every token as the trainer does; other
/// numerics differ, boundedly; greedy decoding equals llama.cpp's.
/// </summary>
public sealed class DecoderFamilyEngineTests : IDisposable
{
    private readonly TemporaryFolder _root = new("engine-families-");

    public DecoderFamilyEngineTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("mixtral")]
    [InlineData("qwen2_moe")]
    public void Fp32_LogProbsAndRoutingEqualTheTrainersForward(string arch)
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, arch, o => o with { Llama3Rope = arch == "llama" }));
        using var model = hf.Load();
        using var engine = new GenerationEngine(hf.Config, Numerics.Fp32, slots: 3, new SamplingOptions(),
            hf.Tokenizer.EosIds, maxTokens: 8, seed: 11);
        engine.LoadWeights(hf, version: 1);
        var sequences = Prompts(hf.Tokenizer, 7).Select((p, i) => new Sequence(i, p)).ToList();
        foreach (var s in sequences) engine.Enqueue(s);
        Assert.Equal(7, engine.RunToCompletion().Count);
        foreach (var s in sequences)
        {
            var (reference, routing) = Reference(model, s);
            Assert.Equal(s.Tokens.Count, s.LogProbs.Count);
            for (var t = 0; t < reference.Length; t++) Assert.True(Math.Abs(reference[t] - s.LogProbs[t]) < 1e-5,
                $"{arch} seq {s.Id} token {t}: {reference[t]} vs {s.LogProbs[t]}");
            Assert.Equal(model.ExpertLayers.Count > 0 ? s.Tokens.Count : 0, s.Routing.Count);
            for (var t = 0; t < s.Routing.Count; t++)
                for (var l = 0; l < routing.Count; l++) Assert.Equal(routing[l][t], s.Routing[t][l]);
        }
        Assert.True(engine.PrefixTokens > 0);
    }

    [Theory]
    [InlineData(Numerics.Bf16)]
    [InlineData(Numerics.Fp16)]
    [InlineData(Numerics.Int8)]
    [InlineData(Numerics.Fp8)]
    public void OtherNumerics_DifferFromTheTrainer_ButStayClose(Numerics numerics)
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, "mixtral"));
        using var model = hf.Load();
        using var engine = new GenerationEngine(hf.Config, numerics, slots: 4, new SamplingOptions(),
            hf.Tokenizer.EosIds, 8, seed: 11);
        engine.LoadWeights(hf, 1);
        var sequences = Prompts(hf.Tokenizer, 4).Select((p, i) => new Sequence(i, p)).ToList();
        foreach (var s in sequences) engine.Enqueue(s);
        engine.RunToCompletion();
        var differences = sequences.SelectMany(s => Reference(model, s).LogProbs.Zip(s.LogProbs, (a,
            b) => Math.Abs(a - b))).ToList();
        Assert.True(differences.Max() > 1e-4, $"{numerics}: no mismatch ({differences.Max():E2})");
        Assert.True(differences.Average() < 0.5, $"{numerics}: mean |Δ log p| {differences.Average():F3}");
    }

    [Fact]
    public void Greedy_EqualsLlamaCppsGreedyDecoding()
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, "llama"));
        var prompt = hf.Tokenizer.Encode("Once upon a time, Leo");
        using var engine = new GenerationEngine(hf.Config, Numerics.Fp32, slots: 2,
            new SamplingOptions { Temperature = 0 }, hf.Tokenizer.EosIds, 20, seed: 1);
        engine.LoadWeights(hf, 1);
        var ours = new Sequence(0, prompt);
        engine.Enqueue(ours);
        // batched with another sequence
        engine.Enqueue(new Sequence(1, hf.Tokenizer.Encode("A different prompt beside it")));
        engine.RunToCompletion();
        var gguf = Path.Combine(_root.Path, "llama.gguf");
        GgufWriter.Write(hf, gguf);
        using var reference = LlamaCppModel.Load(gguf, threads: 2, context: 64);
        var theirs = reference.Greedy([.. prompt.Select(t => (int)t)], 20,
            hf.Tokenizer.EosIds.Select(i => (int)i).ToHashSet());
        Assert.True(ours.Tokens.Count >= 10, $"stopped after {ours.Tokens.Count} tokens");
        Assert.Equal(theirs.Select(t => (long)t), ours.Tokens);
    }

    private static List<long[]> Prompts(TextTokenizer tokenizer, int count) =>
        [.. Enumerable.Range(0, count).Select(i => tokenizer.Encode(string.Join(' ', Enumerable.Repeat("the cat",
            i + 1)) + $" {i * 7}+{i}="))];

    /// <summary>log p of each generated token, and each expert layer's routing at the positions that produced them,
    /// from one forward.</summary>
    private static (float[] LogProbs, List<int[][]> Routing) Reference(CausalLanguageModel model, Sequence s)
    {
        using var _ = no_grad();
        foreach (var layer in model.ExpertLayers) layer.RecordRouting = true;
        var all = s.Prompt.Concat(s.Tokens).ToArray();
        using var input = tensor(all[..^1]).unsqueeze(0);                                  // [1, L-1]
        using var logp = nn.functional.log_softmax(model.call(input), -1).squeeze(0);      // [L-1, V]
        var positions = Enumerable.Range(0, s.Tokens.Count).Select(t => s.Prompt.Count - 1 + t).ToArray();
        var routing = model.ExpertLayers.Select(layer =>
        {
            var sorted = layer.LastRouting!.sort(-1).Values;
            return positions.Select(p => sorted[p].data<long>().Select(v => (int)v).ToArray()).ToArray();
        }).ToList();
        return ([.. s.Tokens.Select((token, t) => logp[positions[t], token].item<float>())], routing);
    }
}
