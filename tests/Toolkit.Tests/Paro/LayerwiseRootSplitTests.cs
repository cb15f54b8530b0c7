using Toolkit.Comm;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Layer-wise execution releases the root (embeddings, final norm) when the blocks' backward starts. That is only a
/// memory saving if (1) the tied output layer's gradient has reached the root's gradient buffer by then, rather than
/// waiting inside autograd for the embedding's (the GPT's head reads the token embedding through its own leaf for
/// this), and (2) nothing else still points into the released buffers: the views made to attach parameters and
/// gradients, or the head's transposed weight, would otherwise keep them allocated until the micro-step ends.
/// </summary>
public sealed class LayerwiseRootSplitTests
{
    private const int Ranks = 4, GroupSize = 2;

    [Theory]
    [InlineData("GGG", ParoPrecision.Fp32)]
    [InlineData("GGG", ParoPrecision.Bf16)]
    [InlineData("IGG", ParoPrecision.Fp32)]
    [InlineData("NIG", ParoPrecision.Fp32)]
    [InlineData("ING", ParoPrecision.Fp32)]
    [InlineData("GGG", ParoPrecision.Fp32, true, true)]
    [InlineData("IGG", ParoPrecision.Fp32, false, false)]
    public void AtTheSplit_TheHeadsGradientIsInTheBuffer_AndNothingHoldsTheReleasedRoot(string code,
        ParoPrecision precision, bool recompute = false, bool prefetch = true)
    {
        TorchRuntime.EnsureInitialized();
        const int accumulation = 2;
        var strategy = ShardingStrategy.Parse(code);
        var config = new GptConfig(VocabularySize: 13, ContextLength: 8, Layers: 3, Heads: 2, Embedding: 6);
        // the root's layout: wte, wpe, ln_f (weight, bias), then padding
        var (wte, wpe, lnF) = (13 * 6, 8 * 6, 2 * 6);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm =>
        {
            using var model = Gpt.Create(config, seed: 5);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(strategy, GroupSize, accumulation,
                precision, Layerwise: true, Prefetch: prefetch, Recompute: recompute), comm);
            var splits = new List<(int Live, double Head, double Positions, double Norm)?>();
            trainer.RootSplitObserver = (gradient, live) =>
            {
                if (gradient is null) { splits.Add((live, double.NaN, double.NaN, double.NaN)); return; }
                using var scope = NewDisposeScope();
                using var g = gradient.to(ScalarType.Float32);
                double Norm(long offset, long length) => g.narrow(0, offset, length).abs().sum().item<float>();
                splits.Add((live, Norm(0, wte), Norm(wte, wpe), Norm(wte + wpe, lnF)));
            };
            for (var step = 0; step < 2; step++)
                trainer.Step([.. Enumerable.Range(0, accumulation).Select(a => (Func<nn.Module, Tensor>)(m =>
                    ((Gpt)m).Loss(tensor(Enumerable.Range(0,
                        16).Select(i => (long)((i + a + comm.Rank + step) % 13)).ToArray(), [2, 8]),
                        tensor(Enumerable.Range(0, 16).Select(i => (long)((3 * i + a + comm.Rank) % 13)).ToArray(), [2,
                            8]))))]);
            return splits;
        });
        foreach (var splits in results)
        {
            Assert.Equal(2 * accumulation, splits.Count);                     // once per micro-step
            foreach (var split in splits)
            {
                var (live, head, positions, norm) = split!.Value;
                Assert.Equal(0, live);
                // g = N: autograd writes into the accumulator slice itself; nothing is released
                if (strategy.Gradients == ShardLevel.None) continue;
                Assert.True(head > 0,
                    $"the tied head's gradient of wte is not in the root's buffer at the split ({head})");
                Assert.True(norm > 0, $"the final norm's gradient is not in the root's buffer at the split ({norm})");
                // the embeddings' backward has not run yet: it writes into a fresh buffer
                Assert.Equal(0, positions);
            }
        }
    }
}
