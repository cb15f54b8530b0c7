using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Rl;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Rl;

/// <summary>
/// The trainer's scoring of rollouts in length buckets: the buckets cover every sequence once, cut a long-tailed batch
/// and leave an even one whole, and the log-probabilities, entropies and gradients equal those of one padded forward
/// over each sequence alone.
/// </summary>
public sealed class ResponseScoringTests
{
    public ResponseScoringTests() => TorchRuntime.EnsureInitialized();

    private static List<Sequence> Batch(params int[] responseLengths)
    {
        var random = new Random(7);
        return [.. responseLengths.Select((length, id) =>
        {
            var s = new Sequence(id, [.. Enumerable.Range(0, 3 + id % 2).Select(_ => (long)random.Next(97, 123))]);
            for (var t = 0; t < length; t++)
            {
                s.Tokens.Add(random.Next(97, 123));
                s.LogProbs.Add(-1.5f);
                s.Versions.Add(0);
            }
            return s;
        })];
    }

    [Fact]
    public void Buckets_CoverEverySequenceOnce_AndCutOnlyALongTail()
    {
        var tail = Batch([.. Enumerable.Repeat(2, 30), .. Enumerable.Repeat(40, 2)]);
        var buckets = ResponseScoring.Buckets(tail);
        Assert.Equal(Enumerable.Range(0, tail.Count), buckets.SelectMany(b => b).Order());
        Assert.InRange(buckets.Count, 2, ResponseScoring.MaxBuckets);
        // sorted by length: every bucket's sequences are no longer than the next one's
        Assert.All(buckets.Zip(buckets.Skip(1)), pair => Assert.True(pair.First.Max(i => tail[i].Length)
            <= pair.Second.Min(i => tail[i].Length)));
        var even = Batch([.. Enumerable.Repeat(5, 16)]);
        Assert.Single(ResponseScoring.Buckets(even));
    }

    [Fact]
    public void Scores_EqualEachSequenceScoredAlone_WithGradients()
    {
        var sequences = Batch(1, 9, 2, 30, 3, 2, 25, 4);
        Assert.True(ResponseScoring.Buckets(sequences).Count > 1);
        random.manual_seed(3);
        using var model = new Gpt(GptConfig.Small);
        var (logp, infer, valid, entropy) = ResponseScoring.Score(model, sequences, 1.0);     // [N, T]
        Assert.Equal(new long[] { sequences.Count, 30 }, logp.shape);
        logp.sum().backward();
        var batched = model.parameters().Select(p => p.grad!.clone()).ToList();
        model.zero_grad();
        for (var i = 0; i < sequences.Count; i++)
        {
            var (alone, _, _, aloneEntropy) = ResponseScoring.Score(model, [sequences[i]], 1.0);   // [1, T_i]
            var length = sequences[i].Tokens.Count;
            Assert.True(alone[0].allclose(logp[i, ..length], rtol: 0, atol: 1e-5), $"sequence {i}");
            Assert.True(aloneEntropy[0].allclose(entropy[i, ..length], rtol: 0, atol: 1e-5), $"sequence {i}");
            Assert.Equal(0, logp[i, length..].abs().sum().item<float>());
            Assert.Equal(length, valid[i].sum().item<float>());
            Assert.Equal(-1.5f * length, infer[i].sum().item<float>(), 4);
            alone.sum().backward();
        }
        var separately = model.parameters().Select(p => p.grad!).ToList();
        Assert.All(batched.Zip(separately), g => Assert.True(g.First.allclose(g.Second, rtol: 1e-4, atol: 1e-5)));
    }
}
