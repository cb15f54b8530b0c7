using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Generation;

/// <summary>
/// The generation engine against the trainer's model: with fp32 numerics, the log-probability it records for every
/// sampled token equals the full-sequence forward of <see cref="Gpt"/> (so the KV cache, positions and continuous
/// batching are right); other numerics differ, measurably and boundedly.
/// </summary>
public sealed class GenerationEngineTests
{
    private static readonly GptConfig Config = GptConfig.Tiny;

    public GenerationEngineTests() => TorchRuntime.EnsureInitialized();

    [Fact]
    public void Fp32_LogProbsEqualTheTrainersForward_WithMoreSequencesThanSlots()
    {
        using var model = Model(seed: 3);
        using var engine = new GenerationEngine(Config, Numerics.Fp32, slots: 3, new SamplingOptions(),
            stopTokens: ['\n'], maxTokens: 8, seed: 11);
        engine.LoadWeights(Flat(model), version: 1);
        var sequences = Prompts(7).Select((p, i) => new Sequence(i, p)).ToList();
        foreach (var s in sequences) engine.Enqueue(s);
        var finished = engine.RunToCompletion();
        Assert.Equal(7, finished.Count);
        Assert.All(sequences, s =>
        {
            Assert.True(s.IsFinished);
            Assert.Equal(s.Tokens.Count, s.LogProbs.Count);
            Assert.All(s.Versions, v => Assert.Equal(1, v));
            Assert.True(s.Tokens[^1] == '\n' || s.Tokens.Count == 8);
            Assert.Equal(s.Tokens[^1] != '\n', s.IsTruncated);
            var reference = ReferenceLogProbs(model, s);
            for (var t = 0; t < reference.Length; t++) Assert.Equal(reference[t], s.LogProbs[t], 4);
        });
        Assert.Equal(sequences.Sum(s => s.Tokens.Count), engine.SampledTokens);
    }

    [Theory]
    [InlineData(Numerics.Bf16)]
    [InlineData(Numerics.Fp16)]
    [InlineData(Numerics.Int8)]
    [InlineData(Numerics.Fp8)]
    public void OtherNumerics_DifferFromTheTrainer_ButStayClose(Numerics numerics)
    {
        using var model = Model(seed: 3);
        using var engine = new GenerationEngine(Config, numerics, slots: 4, new SamplingOptions(), ['\n'], 8, seed: 11);
        engine.LoadWeights(Flat(model), 1);
        var sequences = Prompts(4).Select((p, i) => new Sequence(i, p)).ToList();
        foreach (var s in sequences) engine.Enqueue(s);
        engine.RunToCompletion();
        var differences = sequences.SelectMany(s => ReferenceLogProbs(model, s).Zip(s.LogProbs, (a,
            b) => Math.Abs(a - b))).ToList();
        Assert.True(differences.Max() > 1e-4, $"{numerics}: no mismatch ({differences.Max():E2})");
        Assert.True(differences.Average() < 0.5, $"{numerics}: mean |Δ log p| {differences.Average():F3}");
    }

    [Fact]
    public void TheDial_Fp32BelowFp16BelowBf16BelowInt8BelowFp8()
    {
        // The mismatch a user dials with --rollout-precision grows in this order: int8 is weight-only int8 with
        // bf16 compute (W8A16), so its error is bf16's plus the weights' rounding; fp8 (W8A8) rounds weights and
        // activations to 3 mantissa bits. Mean |Δ log p| over 32 sequences.
        using var model = Model(seed: 3);
        double Mismatch(Numerics numerics)
        {
            using var engine = new GenerationEngine(Config, numerics, slots: 8, new SamplingOptions(), ['\n'], 8,
                seed: 11);
            engine.LoadWeights(Flat(model), 1);
            var sequences = Prompts(32).Select((p, i) => new Sequence(i, p)).ToList();
            foreach (var s in sequences) engine.Enqueue(s);
            engine.RunToCompletion();
            return sequences.SelectMany(s => ReferenceLogProbs(model, s).Zip(s.LogProbs, (a,
                b) => Math.Abs((double)a - b))).Average();
        }
        var dial = new[] { Numerics.Fp32, Numerics.Fp16, Numerics.Bf16, Numerics.Int8, Numerics.Fp8 }.Select(n => (n,
            Mismatch(n))).ToList();
        for (var i = 1; i < dial.Count; i++)
            Assert.True(dial[i].Item2 > dial[i - 1].Item2, string.Join(", ", dial.Select(d => $"{d.n} {d.Item2:E2}")));
    }

    /// <summary>In one forward, rows decoding, a short prompt (its rows attend one by one, as decodes do) and a long
    /// one (attending in a prefill group) all give the trainer's log-probabilities.</summary>
    [Fact]
    public void ShortAndLongPrompts_JoiningBesideDecodes_EqualTheTrainersForward()
    {
        using var model = Model(seed: 3);
        using var engine = new GenerationEngine(Config, Numerics.Fp32, slots: 4, new SamplingOptions(),
            stopTokens: [300], maxTokens: 5, seed: 7);   // 300: never drawn
        engine.LoadWeights(Flat(model), 1);
        long[] Prompt(int length, int salt) => [.. Enumerable.Range(0, length).Select(i => 33L + i * salt % 90)];
        var decoding = new[] { new Sequence(0, Prompt(4, 3)), new Sequence(1, Prompt(6, 5)) };
        foreach (var s in decoding) engine.Enqueue(s);
        engine.Step();
        var joining = new[] { new Sequence(2, Prompt(3, 7)), new Sequence(3, Prompt(20, 11)) };
        Assert.InRange(joining[0].Prompt.Count, 2, IncrementalDecoder.RowChunk);
        Assert.True(joining[1].Prompt.Count > IncrementalDecoder.RowChunk);
        foreach (var s in joining) engine.Enqueue(s);
        engine.RunToCompletion();
        Assert.All(decoding.Concat(joining), s =>
        {
            var reference = ReferenceLogProbs(model, s);
            Assert.Equal(5, reference.Length);
            for (var t = 0; t < reference.Length; t++) Assert.Equal(reference[t], s.LogProbs[t], 4);
        });
    }

    [Fact]
    public void EvictedSequences_ResumeOnNewWeights_KeepingTheirVersions()
    {
        using var first = Model(seed: 3);
        using var second = Model(seed: 4);
        var (engine, s) = ThreeTokensIn(first);
        using var _ = engine;
        Assert.Same(s, Assert.Single(engine.EvictAll()));
        Assert.Equal(0, engine.InFlight);
        engine.LoadWeights(Flat(second), 2);
        engine.Enqueue(s);
        engine.RunToCompletion();
        Assert.Equal([1, 1, 1, 2, 2, 2], s.Versions);
        Assert.True(s.IsTruncated);
        Assert.Equal(1, s.Evictions);
        var resumed = ReferenceLogProbs(second, s);
        for (var t = 3; t < 6; t++) Assert.Equal(resumed[t], s.LogProbs[t], 4);
    }

    /// <summary>In flight (<c>keepCache</c>): a sequence goes on through a weight load without feeding its prefix
    /// again. With the same weights loaded again the run equals an uninterrupted one (to float rounding: the weights
    /// are new tensors); with other weights its next tokens attend to the old weights' cache, so their
    /// log-probabilities are not the new weights' full forward (which a re-fed sequence gets).</summary>
    [Fact]
    public void InflightUpdate_KeepsTheCache_ThroughAWeightLoad()
    {
        using var first = Model(seed: 3);
        using var second = Model(seed: 4);
        (Sequence Sequence, long Prefix) Run(Gpt? next)
        {
            var (engine, s) = ThreeTokensIn(first);
            using var _ = engine;
            var fed = engine.PrefixTokens;
            if (next is not null) engine.LoadWeights(Flat(next), 2, keepCache: true);
            engine.RunToCompletion();
            return (s, engine.PrefixTokens - fed);
        }
        var (uninterrupted, _) = Run(null);
        var (same, samePrefix) = Run(first);
        Assert.Equal(0, samePrefix);
        Assert.Equal(uninterrupted.Tokens, same.Tokens);
        for (var t = 0; t < same.LogProbs.Count; t++)
            Assert.True(Math.Abs(uninterrupted.LogProbs[t] - same.LogProbs[t]) < 1e-5, $"token {t}");
        var (other, otherPrefix) = Run(second);
        Assert.Equal(0, otherPrefix);
        Assert.Equal([1, 1, 1, 2, 2, 2], other.Versions);
        var full = ReferenceLogProbs(second, other);
        Assert.True(Math.Abs(full[3] - other.LogProbs[3]) > 1e-3,
            $"the token after the load got the new weights' full forward ({full[3]}): the cache was not kept");
    }

    [Fact]
    public void SameSeed_SameTokens()
    {
        using var model = Model(seed: 3);
        long[][] Run()
        {
            using var engine = new GenerationEngine(Config, Numerics.Fp32, 2, new SamplingOptions { Temperature = 0.8,
                TopP = 0.9 }, ['\n'], 8, seed: 42);
            engine.LoadWeights(Flat(model), 1);
            var seqs = Prompts(3).Select((p, i) => new Sequence(i, p)).ToList();
            foreach (var q in seqs) engine.Enqueue(q);
            engine.RunToCompletion();
            return [.. seqs.Select(q => q.Tokens.ToArray())];
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void MixtureOfExperts_Fp32_MatchesTheTrainer_InLogProbsAndRouting()
    {
        var config = Config.WithExperts(4, topK: 2);
        using var model = Gpt.Create(config, 3);
        Assert.Equal(config.ParameterCount, Flat(model).LongLength);
        using var engine = new GenerationEngine(config, Numerics.Fp32, slots: 3, new SamplingOptions(), ['\n'], 8,
            seed: 11);
        engine.LoadWeights(Flat(model), 1);
        var sequences = Prompts(5).Select((p, i) => new Sequence(i, p)).ToList();
        foreach (var s in sequences) engine.Enqueue(s);
        engine.RunToCompletion();
        Assert.All(sequences, s =>
        {
            Assert.Equal(s.Tokens.Count, s.Routing.Count);
            Assert.All(s.Routing, r => Assert.Equal(config.Layers, r.Length));
            var reference = ReferenceLogProbs(model, s);
            for (var t = 0; t < reference.Length; t++) Assert.Equal(reference[t], s.LogProbs[t], 4);
        });
        var (flips, scored) = (new long[config.Layers], 0);
        using (no_grad()) Toolkit.Rl.ResponseScoring.Score(model, sequences, 1.0, eachForward: part =>
        {
            scored += part.Count;
            flips = [.. flips.Zip(Toolkit.Rl.ResponseScoring.RoutingFlips(model, part), (a, b) => a + b)];
        });
        // same numerics, same experts
        Assert.Equal(new long[config.Layers], flips);
        Assert.Equal(sequences.Count, scored);
    }

    /// <summary>An engine on <paramref name="model"/> (2 slots, 6 tokens at most, no stop token) with one sequence
    /// that has sampled 3 tokens.</summary>
    private static (GenerationEngine Engine, Sequence Sequence) ThreeTokensIn(Gpt model)
    {
        var engine = new GenerationEngine(Config, Numerics.Fp32, slots: 2, new SamplingOptions(),
            stopTokens: [300], maxTokens: 6, seed: 5);   // 300: never drawn
        engine.LoadWeights(Flat(model), 1);
        var s = new Sequence(0, Prompts(1)[0]);
        engine.Enqueue(s);
        while (s.Tokens.Count < 3) engine.Step();
        return (engine, s);
    }

    internal static Gpt Model(int seed)
    {
        return Gpt.Create(Config, seed);
    }

    internal static float[] Flat(Gpt model)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();   // holds the detached temporaries
        return [.. model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray())];
    }

    private static List<long[]> Prompts(int count) =>
        [.. Enumerable.Range(0,
            count).Select(i => System.Text.Encoding.ASCII.GetBytes($"{i * 7}+{i}=").Select(b => (long)b).ToArray())];

    /// <summary>log p of each generated token from one forward of the whole sequence.</summary>
    private static float[] ReferenceLogProbs(Gpt model, Sequence s)
    {
        using var _ = no_grad();
        var all = s.Prompt.Concat(s.Tokens).ToArray();
        using var input = tensor(all[..^1]).unsqueeze(0);                                  // [1, L-1]
        using var logp = nn.functional.log_softmax(model.call(input), -1).squeeze(0);      // [L-1, V]
        return [.. s.Tokens.Select((token, t) => logp[s.Prompt.Count - 1 + t, token].item<float>())];
    }
}
