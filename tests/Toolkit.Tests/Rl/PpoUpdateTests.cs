using Toolkit.Paro;
using TorchSharp;
using Toolkit.Rl;
using static TorchSharp.torch;

namespace Toolkit.Tests.Rl;

/// <summary>
/// The pieces of a PPO update, each against numbers computed by hand: the clip with separate lower and upper ranges
/// (where it binds, the loss, the gradient), every loss aggregation on a ragged batch, the entropy bonus, the
/// learning-rate schedule and dynamic sampling's refill.
/// </summary>
public sealed class PpoUpdateTests
{
    public PpoUpdateTests() => Toolkit.Runtime.TorchRuntime.EnsureInitialized();

    private static Tensor Rows(params double[][] rows) =>
        tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length], dtype: ScalarType.Float64);

    /// <summary>
    /// Two responses of two tokens, log π_old = log 0.5 everywhere, no mismatch. Response 0 (A = +1) has ratios 1.5
    /// and 1.1: with clip-high 0.28 the first is clipped to 1.28 (the clipped term is smaller), the second is not.
    /// Response 1 (A = −1) has ratios 0.5 and 1.5: with clip-low 0.2 the first becomes 0.8 (−0.8 &lt; −0.5, binds),
    /// the second keeps −1.5 (smaller than −1.28). Loss (seq-mean-token-mean) = mean(mean(−1.28, −1.1),
    /// mean(0.8, 1.5)) = (−1.19 + 1.15) / 2 = −0.02; gradients: 0 where the clip binds, −A r / (|y| G) elsewhere.
    /// </summary>
    [Fact]
    public void Clip_WithAsymmetricRanges_BindsWhereTheClippedTermIsSmaller()
    {
        using var half = Math.Log(0.5).ToScalar();                                    // held for the call (TK0001)
        var old = full([2, 2], half, dtype: ScalarType.Float64);
        var ratios = Rows([1.5, 1.1], [0.5, 1.5]);
        var logpNew = (old + ratios.log()).detach().requires_grad_();
        var batch = new GrpoBatch(logpNew, old, old, ones([2, 2], dtype: ScalarType.Float64),
            tensor(new[] { 1.0, -1.0 }, dtype: ScalarType.Float64));
        var options = new GrpoOptions { ClipLow = 0.2, ClipHigh = 0.28 };
        var (loss, _, clipFraction) = GrpoLoss.Compute(batch, new CorrectionOptions { Correction = Correction.None },
            options);
        Assert.Equal(-0.02, loss.item<double>(), 12);
        Assert.Equal(0.5, clipFraction, 12);
        loss.backward();
        var gradient = logpNew.grad!.data<double>().ToArray();
        Assert.Equal([0, -1.1 / 4, 0, 1.5 / 4], gradient.Select(g => Math.Round(g, 12)));
    }

    /// <summary>The symmetric default clips at 1 ± 0.2: a ratio of 1.25 with A = +1 binds.</summary>
    [Fact]
    public void Clip_ByDefault_IsSymmetric()
    {
        var old = zeros([1, 2], dtype: ScalarType.Float64);
        var logpNew = Rows([Math.Log(1.25), Math.Log(0.85)]);
        var (loss, _, clipFraction) = GrpoLoss.Compute(new GrpoBatch(logpNew, old, old, ones([1, 2],
            dtype: ScalarType.Float64), tensor(new[] { 1.0 }, dtype: ScalarType.Float64)),
            new CorrectionOptions { Correction = Correction.None }, new GrpoOptions());
        Assert.Equal(-(1.2 + 0.85) / 2, loss.item<double>(), 12);
        Assert.Equal(0.5, clipFraction, 12);
    }

    /// <summary>Per-token values [[1, 2, 3], [4, pad, pad]]: token-mean 10/4, seq-mean-token-mean (2 + 4)/2,
    /// seq-mean-token-sum (6 + 4)/2, seq-mean-token-sum-norm with T_max 8 (6/8 + 4/8)/2, budget 20: 10/20.</summary>
    [Theory]
    [InlineData(LossAggregation.TokenMean, 2.5)]
    [InlineData(LossAggregation.SeqMeanTokenMean, 3.0)]
    [InlineData(LossAggregation.SeqMeanTokenSum, 5.0)]
    [InlineData(LossAggregation.SeqMeanTokenSumNorm, 0.625)]
    [InlineData(LossAggregation.Budget, 0.5)]
    public void EachAggregation_OfARaggedBatch_IsTheHandComputedNumber(LossAggregation mode, double expected)
    {
        var perToken = Rows([1, 2, 3], [4, 0, 0]);
        var valid = Rows([1, 1, 1], [1, 0, 0]);
        Assert.Equal(expected, GrpoLoss.Aggregate(perToken, valid, mode, budget: 20, horizon: 8).item<double>(), 12);
    }

    [Fact]
    public void Aggregations_ThatNeedAConstant_SayWhichOne()
    {
        var values = Rows([1.0]);
        Assert.Contains("Phi", Assert.Throws<ArgumentOutOfRangeException>(() => GrpoLoss.Aggregate(values, values,
            LossAggregation.Budget, 0, 8)).Message);
        Assert.Contains("T_max", Assert.Throws<ArgumentOutOfRangeException>(() => GrpoLoss.Aggregate(values, values,
            LossAggregation.SeqMeanTokenSumNorm, 20, 0)).Message);
    }

    /// <summary>With zero advantages only the bonus is left: loss = −0.1 · token-mean(0.5, 1.5) = −0.1, and each
    /// entropy's gradient is −0.1 / 2.</summary>
    [Fact]
    public void EntropyBonus_SubtractsItsWeightTimesTheAggregatedEntropy()
    {
        var logp = zeros([1, 2], dtype: ScalarType.Float64);
        var entropy = Rows([0.5, 1.5]).requires_grad_();
        var batch = new GrpoBatch(logp, logp, logp, ones([1, 2], dtype: ScalarType.Float64),
            tensor(new[] { 0.0 }, dtype: ScalarType.Float64), Entropy: entropy);
        var options = new GrpoOptions { EntropyCoefficient = 0.1, Aggregation = LossAggregation.TokenMean };
        var (loss, _, _) = GrpoLoss.Compute(batch, new CorrectionOptions { Correction = Correction.None }, options);
        Assert.Equal(-0.1, loss.item<double>(), 12);
        loss.backward();
        Assert.Equal([-0.05, -0.05], entropy.grad!.data<double>().ToArray().Select(g => Math.Round(g, 12)));
    }

    /// <summary>Warm-up of 2 over 6 steps, cosine to 0.1: 1/2, 1, then 0.1 + 0.9 · ½ (1 + cos(π p)) for p = 0, 1/4,
    /// 2/4, 3/4.</summary>
    [Fact]
    public void LrSchedule_WarmsUpLinearly_ThenFollowsTheCosine()
    {
        var cosine = new LrScheduleOptions { Schedule = LrSchedule.Cosine, WarmupSteps = 2, MinRatio = 0.1 };
        double[] expected = [0.5, 1, 1, 0.1 + 0.45 * (1 + Math.Cos(Math.PI / 4)), 0.55,
            0.1 + 0.45 * (1 + Math.Cos(3 * Math.PI / 4))];
        Assert.Equal(expected.Select(v => Math.Round(v, 12)),
            Enumerable.Range(0, 6).Select(s => Math.Round(cosine.Factor(s, 6), 12)));
        var constant = new LrScheduleOptions { WarmupSteps = 4 };
        Assert.Equal([0.25, 0.5, 0.75, 1, 1, 1], Enumerable.Range(0, 6).Select(s => constant.Factor(s, 6)));
    }

    private sealed class ScriptedSource(params long[][] draws) : IRolloutSource
    {
        private int _next;

        public RolloutBatch Next()
        {
            var ids = draws[Math.Min(_next++, draws.Length - 1)];
            return new RolloutBatch([.. ids.Select(id => new RolloutGroup(id, new Problem("q", "a"), []))], 10, 2,
                1.0, 0, 0);
        }
    }

    /// <summary>Informative groups have even ids here. Three groups per draw: the first draw has one informative
    /// group, the second two more, so two draws fill the batch (the others dropped); a draw with a fourth informative
    /// group is cut back to three; with nothing informative the last draw is kept whole.</summary>
    [Fact]
    public void DynamicSampling_DropsUniformGroups_AndRefillsTheBatch()
    {
        static bool Even(RolloutGroup g) => g.Id % 2 == 0;
        var refill = new DynamicSampling(new ScriptedSource([0, 1, 3], [5, 2, 4]), Even, maxDraws: 4);
        var batch = refill.Next();
        Assert.Equal([0L, 2, 4], batch.Groups.Select(g => g.Id));
        Assert.Equal((3, 2), (refill.Dropped, refill.Draws));
        Assert.Equal((20L, 4L, 2.0), (batch.SampledTokens, batch.PrefixTokens, batch.Seconds));

        var trimmed = new DynamicSampling(new ScriptedSource([0, 1, 2], [4, 6, 3]), Even, maxDraws: 4);
        Assert.Equal([0L, 2, 4], trimmed.Next().Groups.Select(g => g.Id));
        Assert.Equal(3, trimmed.Dropped);

        var capped = new DynamicSampling(new ScriptedSource([1, 3, 5]), Even, maxDraws: 2);
        Assert.Equal([1L, 3, 5], capped.Next().Groups.Select(g => g.Id));
        Assert.Equal((3, 2), (capped.Dropped, capped.Draws));
    }

    [Fact]
    public void MiniBatches_SplitTheResponsesInOrder_SizesDifferingByOneAtMost()
    {
        Assert.Equal([(0, 3), (3, 3), (6, 2), (8, 2)], PolicyUpdate.Split(10, 4));
        Assert.Equal([(0, 5)], PolicyUpdate.Split(5, 1));
    }
}
