using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

/// <summary>The ranking agreement bench paro reports: Spearman's rho with ties (fractional ranks).</summary>
public sealed class RankingTests
{
    [Fact]
    public void Spearman_SameOrder_Reversed_AndTies()
    {
        Assert.Equal(1, Ranking.SpearmanRho([1, 2, 3, 4], [10, 20, 30, 40]), 12);
        Assert.Equal(-1, Ranking.SpearmanRho([1, 2, 3, 4], [4, 3, 2, 1]), 12);
        // A model that predicts every strategy equal says nothing about their order: 0, not the tie-breaking's
        // accident.
        Assert.Equal(0, Ranking.SpearmanRho([1, 2, 3, 4], [5, 5, 5, 5]));
        // Ties share their mean rank: x ranks 0,1,2,3; y ranks 0.5,0.5,2,3 -> rho = 0.9486832980505138.
        Assert.Equal(0.9486832980505138, Ranking.SpearmanRho([1, 2, 3, 4], [7, 7 * (1 + 1e-12), 8, 9]), 12);
    }

    [Fact]
    public void KendallTauB_CountsTiesOnNeitherSide()
    {
        Assert.Equal(1, Ranking.KendallTauB([1, 2, 3], [1, 2, 3]), 12);
        Assert.Equal(-1, Ranking.KendallTauB([1, 2, 3], [3, 2, 1]), 12);
        Assert.Equal(0, Ranking.KendallTauB([1, 2, 3], [5, 5, 5]));
        // Pairs: (1,2) tied in y; (1,3), (2,3) concordant: 2 / sqrt(3 * 2).
        Assert.Equal(2 / Math.Sqrt(6), Ranking.KendallTauB([1, 2, 3], [4, 4, 9]), 12);
    }

    /// <summary>Rounds of bench paro: their mutual agreement is the mean Spearman over every pair of rounds, and absent
    /// with one round.</summary>
    [Fact]
    public void AgreementOfRounds_IsTheMeanPairwiseSpearman()
    {
        static BenchmarkRow Row(string code, params double[] rounds) =>
            new("inproc", code, 1, rounds.Order().ElementAt(rounds.Length / 2), 1, 0, 0, [], 0, 0, 0, 0,
                0) { RoundStepSeconds = rounds };
        // Rounds 1 and 2 agree (rho 1), round 3 is reversed (rho -1 with each): (1 - 1 - 1) / 3.
        var rows = new[] { Row("NNN", 1, 1, 3), Row("NIG", 2, 2, 2), Row("GGG", 3, 3, 1) };
        Assert.Equal(-1.0 / 3, Ranking.AgreementOfRounds(rows)!.Value, 12);
        Assert.Null(Ranking.AgreementOfRounds([Row("NNN", 1), Row("GGG", 2)]));
        Assert.Equal(-1.0 / 3, Ranking.Of("inproc", 1, rows).RoundsAgreement!.Value, 12);
    }

    /// <summary>
    /// The pairs every round ordered alike are the ones the prediction is checked on; a pair whose order changes
    /// between rounds is left out, and a predicted tie does not count as agreeing. The recommendation is judged by its
    /// measured step time against the fastest, and the best strategy against GGG.
    /// </summary>
    [Fact]
    public void Ranking_ResolvedPairs_Recommendation_AndBestOverGgg()
    {
        static BenchmarkRow Row(string code, double predicted, params double[] rounds) =>
            new("emulated 2x2", code, 4, Toolkit.Runtime.Statistics.MidpointMedian(rounds), 1, 0, 0, [], predicted, 0,
                0, 0, 0) { RoundStepSeconds = rounds };
        var rows = new[]
        {
            Row("NIG", 1.0, 0.70, 0.75),   // fastest in both rounds
            Row("NNN", 1.0, 0.80, 0.72),   // NIG-NNN changes order between rounds: not resolved
            Row("IGG", 1.5, 1.30, 1.35),
            Row("GGG", 1.4, 1.80, 1.90),   // predicted faster than IGG: a resolved pair the prediction gets wrong
        };
        var ranking = Ranking.Of("emulated 2x2", 4, rows);
        // Resolved: NIG<IGG, NIG<GGG, NNN<IGG, NNN<GGG, IGG<GGG (5 of 6). Agreeing: the first four; IGG<GGG is
        // predicted reversed.
        Assert.Equal(new ResolvedPairs(6, 5, 4), ranking.Pairs);
        Assert.Equal(0.8, ranking.Pairs!.Fraction!.Value, 12);
        // NIG and NNN are predicted equal; the first of the tie is recommended and it is the measured fastest.
        Assert.Equal("NIG", ranking.Recommended);
        Assert.Equal(1, ranking.RecommendedOverBest, 12);
        Assert.Equal(1.85 / 0.725, ranking.GggOverBest!.Value, 12);

        // The recommendation when the prediction is wrong: GGG predicted fastest is 1.85 / 0.725 slower than the best.
        var wrong = Ranking.Of("x", 4, [Row("NIG", 2.0, 0.70, 0.75), Row("GGG", 1.0, 1.80, 1.90)]);
        Assert.Equal("GGG", wrong.Recommended);
        Assert.Equal(1.85 / 0.725, wrong.RecommendedOverBest, 12);
        Assert.Equal(new ResolvedPairs(1, 1, 0), wrong.Pairs);

        // A pair the rounds resolve but the model predicts equal (within 1e-9) does not count as ordered right;
        // a pair with a time that is not finite is left out.
        var tie = Ranking.PairsResolvedByRounds([Row("NIG", 1.0, 0.70, 0.75), Row("NII", 1.0 * (1 + 1e-12), 0.80,
            0.85), Row("III", 2.0, 0.90, 0.95)]);
        Assert.Equal(new ResolvedPairs(3, 3, 2), tie);
        // Of six pairs only NIG-III has finite times throughout.
        Assert.Equal(new ResolvedPairs(6, 1, 1), Ranking.PairsResolvedByRounds(
            [Row("NIG", 1.0, 0.70, 0.75), Row("NII", 2.0, 0.80, double.NaN), Row("III", 3.0, 0.90, 0.95), Row("IGG",
                double.PositiveInfinity, 1.0, 1.1)]));

        // One round resolves nothing by this test; without GGG there is no ratio to it.
        var single = Ranking.Of("x", 1, [Row("NIG", 1.0, 0.7), Row("NNN", 2.0, 0.8)]);
        Assert.Null(single.Pairs);
        Assert.Null(single.GggOverBest);
        Assert.Null(new ResolvedPairs(3, 0, 0).Fraction);
    }
}
