using Toolkit.Rl;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Rl;

/// <summary>
/// The corrections against hand-computed tables, the loss's gradient against finite differences, and the normaliser: a
/// masked token keeps its place, so masking never inflates the kept tokens' gradients.
/// </summary>
public sealed class IcePopTests
{
    // k = p_train / p_infer for five tokens of one response; the table below is worked by hand.
    private static readonly double[] Ratios = [0.49, 0.51, 1.0, 4.9, 5.1];

    public IcePopTests() => TorchRuntime.EnsureInitialized();

    [Theory]
    //                     correction          weights                      kept
    [InlineData(Correction.None, new[] { 1, 1, 1, 1, 1.0 }, new[] { 1, 1, 1, 1, 1.0 })]
    [InlineData(Correction.IcePop, new[] { 0, 0.51, 1, 4.9, 0 }, new[] { 0, 1, 1, 1, 0.0 })]
    [InlineData(Correction.Tis, new[] { 0.49, 0.51, 1, 2, 2 }, new[] { 1, 1, 1, 1, 1.0 })]
    [InlineData(Correction.Mis, new[] { 0.49, 0.51, 1, 0, 0 }, new[] { 1, 1, 1, 0, 0.0 })]
    public void TokenWeights_MatchTheHandTable(Correction correction, double[] weights, double[] kept)
    {
        var (w, k) = Weights(Ratios, new CorrectionOptions { Correction = correction });
        for (var t = 0; t < Ratios.Length; t++)
        {
            Assert.Equal(weights[t], w[t], 9);
            Assert.Equal(kept[t], k[t], 9);
        }
    }

    [Fact]
    public void IcePop_BandEdgesAreInclusive_InLogSpace_AndPaddingIsNeverKept()
    {
        var o = new CorrectionOptions();   // alpha 0.5, beta 5
        var logInfer = tensor(new[] { 0.0, 0, 0, 0 }, dtype: ScalarType.Float64).unsqueeze(0);
        // k = α, β, underflow, padding
        var logTrain = tensor(new[] { Math.Log(0.5), Math.Log(5), -1e30, 0 }, dtype: ScalarType.Float64).unsqueeze(0);
        var valid = tensor(new[] { 1.0, 1, 1, 0 }, dtype: ScalarType.Float64).unsqueeze(0);
        var (w, k) = IcePop.Weights(logTrain, logInfer, valid, o);
        Assert.Equal([1.0, 1, 0, 0], k.squeeze(0).data<double>().ToArray());
        Assert.Equal(0.5, w[0, 0].item<double>(), 9);
        Assert.Equal(5, w[0, 1].item<double>(), 9);
        Assert.Equal(0, w[0, 2].item<double>());   // log k clamped to -20, outside the band: masked, no NaN
    }

    [Fact]
    public void SequenceLevelMis_MasksWholeSequencesWhoseRatioExceedsTheCap()
    {
        var o = new CorrectionOptions { Correction = Correction.Mis, MisLevel = MisLevel.Sequence, Cap = 2 };
        var logTrain = tensor(new[,] { { Math.Log(1.5), Math.Log(1.5), 0 }, { Math.Log(0.9), Math.Log(1.1), 0 } },
            dtype: ScalarType.Float64);
        var logInfer = zeros_like(logTrain);
        var valid = tensor(new[,] { { 1.0, 1, 0 }, { 1, 1, 1 } }, dtype: ScalarType.Float64);
        var (w, k) = IcePop.Weights(logTrain, logInfer, valid, o);
        // 1.5 · 1.5 = 2.25 > C: the whole response is masked
        Assert.Equal([0.0, 0, 0], k[0].data<double>().ToArray());
        Assert.Equal([1.0, 1, 1], k[1].data<double>().ToArray());
        Assert.Equal(0.99, w[1, 0].item<double>(), 9);                               // 0.9 · 1.1
    }

    [Fact]
    public void Normaliser_KeepsMaskedTokensInTheCount_SoKeptGradientsDoNotGrow()
    {
        // One response of 4 tokens, advantage 1, r = 1. Token 3's ratio k moves outside IcePop's band.
        double GradientOfToken0(double k3)
        {
            var logpNew = zeros([1, 4], dtype: ScalarType.Float64).requires_grad_();
            var logInfer = tensor(new[] { 0.0, 0, 0, -Math.Log(k3) }, dtype: ScalarType.Float64).unsqueeze(0);
            var batch = new GrpoBatch(logpNew, logpNew.detach(), logInfer, ones([1, 4], dtype: ScalarType.Float64),
                tensor(new[] { 1.0 }, dtype: ScalarType.Float64));
            var (loss, _, _) = GrpoLoss.Compute(batch, new CorrectionOptions(), new GrpoOptions());
            loss.backward();
            return logpNew.grad![0, 0].item<double>();
        }
        Assert.Equal(-0.25, GradientOfToken0(1.0), 12);   // -A · w / |y| = -1 · 1 / 4
        Assert.Equal(-0.25, GradientOfToken0(9.0), 12);   // token 3 masked: still / 4, not / 3
    }

    [Theory]
    [InlineData(Correction.IcePop, 0.0)]
    [InlineData(Correction.Tis, 0.0)]
    [InlineData(Correction.Mis, 0.1)]
    [InlineData(Correction.None, 0.1)]
    public void Gradient_MatchesFiniteDifferences(Correction correction, double kl)
    {
        var random = new Random(7);
        var shape = new long[] { 3, 5 };
        double[] Random(double scale) => [.. Enumerable.Range(0, 15).Select(_ => (random.NextDouble() - 0.5) * scale)];
        var old = tensor(Random(2).Select(v => v - 1).ToArray(), dtype: ScalarType.Float64).reshape(shape);
        // k spread on both sides of the band
        var infer = old + tensor(Random(3), dtype: ScalarType.Float64).reshape(shape);
        var reference = old + tensor(Random(1), dtype: ScalarType.Float64).reshape(shape);
        var valid = tensor(new double[] { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0 },
            dtype: ScalarType.Float64).reshape(shape);
        var advantages = tensor(new[] { 1.2, -0.7, 0.3 }, dtype: ScalarType.Float64);
        // r both inside and outside the clip range
        var start = old + tensor(Random(0.6), dtype: ScalarType.Float64).reshape(shape);
        var o = new CorrectionOptions { Correction = correction };
        var g = new GrpoOptions { KlCoefficient = kl };
        double Loss(Tensor logpNew) => GrpoLoss.Compute(new GrpoBatch(logpNew, old, infer, valid, advantages,
            reference), o, g).Loss.item<double>();

        var x = start.clone().requires_grad_();
        GrpoLoss.Compute(new GrpoBatch(x, old, infer, valid, advantages, reference), o, g).Loss.backward();
        var analytic = x.grad!.data<double>().ToArray();
        const double h = 1e-6;
        for (var i = 0; i < 15; i++)
        {
            var plus = start.clone(); plus.view(-1)[i] += h;
            var minus = start.clone(); minus.view(-1)[i] -= h;
            var numeric = (Loss(plus) - Loss(minus)) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic[i]) < 1e-6,
                $"{correction} element {i}: numeric {numeric}, analytic {analytic[i]}");
        }
    }

    [Fact]
    public void BudgetNormalisation_DividesBySum_ByPhi()
    {
        var logp = zeros([2, 3], dtype: ScalarType.Float64).requires_grad_();
        var batch = new GrpoBatch(logp, logp.detach(), zeros([2, 3], dtype: ScalarType.Float64), ones([2, 3],
            dtype: ScalarType.Float64), tensor(new[] { 1.0, -1.0 }, dtype: ScalarType.Float64));
        var (loss, _, _) = GrpoLoss.Compute(batch, new CorrectionOptions { Correction = Correction.None },
            new GrpoOptions { Aggregation = LossAggregation.Budget }, budget: 12);
        loss.backward();
        Assert.Equal(-1.0 / 12, logp.grad![0, 0].item<double>(), 12);
        Assert.Equal(1.0 / 12, logp.grad![1, 2].item<double>(), 12);
    }

    [Fact]
    public void Diagnostics_AreTheStandardEstimates()
    {
        var logTrain = tensor(new[] { Math.Log(0.4), 0.0, Math.Log(2) }, dtype: ScalarType.Float64).unsqueeze(0);
        var batch = new GrpoBatch(logTrain.clone(), logTrain, zeros([1, 3], dtype: ScalarType.Float64), ones([1, 3],
            dtype: ScalarType.Float64),
            tensor(new[] { 1.0 }, dtype: ScalarType.Float64), Entropy: tensor(new[] { 2.0, 0.5, 0.7 },
                dtype: ScalarType.Float64).unsqueeze(0));
        var (_, d, _) = GrpoLoss.Compute(batch, new CorrectionOptions(), new GrpoOptions());
        Assert.Equal((Math.Log(2.5) + Math.Log(2)) / 3, d.LogProbDiffMean, 9);
        Assert.Equal(Math.Log(2.5), d.LogProbDiffMax, 9);
        // k3 = k - 1 - log k
        Assert.Equal(((0.4 - 1 - Math.Log(0.4)) + (2 - 1 - Math.Log(2))) / 3, d.KlInferTrain, 9);
        Assert.Equal(1.0 / 3, d.MaskedFraction, 9);                                                  // 0.4 < alpha
        Assert.Equal(2.0, d.EntropyMasked, 9);
        Assert.Equal(0.6, d.EntropyKept, 9);
        Assert.Equal(3, d.Tokens);
    }

    [Fact]
    public void GroupAdvantages_StandardiseWithinEachGroup()
    {
        var a = GroupAdvantages.Compute([1, 0, 0, 0, 1, 1, 1, 1], 4);
        Assert.Equal(Math.Sqrt(3), a[0], 1e-4);
        Assert.Equal(-1 / Math.Sqrt(3), a[1], 1e-4);
        Assert.All(a[4..], v => Assert.Equal(0, v, 9));   // no signal from a group that agrees
        Assert.Throws<ArgumentException>(() => GroupAdvantages.Compute([1, 0, 1], 2));
    }

    [Fact]
    public void BadBand_IsRefusedNamingTheValues()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new CorrectionOptions { Alpha = 5,
            Beta = 0.5 }.Validate());
        Assert.Equal("Beta", e.ParamName);
        Assert.Contains("greater than --alpha (5)", e.Message);
    }

    private static (double[] Weight, double[] Kept) Weights(double[] ratios, CorrectionOptions options)
    {
        var logTrain = tensor(ratios.Select(r => Math.Log(r)).ToArray(), dtype: ScalarType.Float64).unsqueeze(0);
        var (w, k) = IcePop.Weights(logTrain, zeros_like(logTrain), ones_like(logTrain), options);
        return (w.squeeze(0).data<double>().ToArray(), k.squeeze(0).data<double>().ToArray());
    }
}
