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
        // A model that predicts every strategy equal says nothing about their order: 0, not the tie-breaking's accident.
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

    /// <summary>Rounds of bench paro: their mutual agreement is the mean Spearman over every pair of rounds, and absent with one round.</summary>
    [Fact]
    public void AgreementOfRounds_IsTheMeanPairwiseSpearman()
    {
        static BenchmarkRow Row(string code, params double[] rounds) =>
            new("inproc", code, 1, rounds.Order().ElementAt(rounds.Length / 2), 1, 0, 0, [], 0, 0, 0, 0, 0) { RoundStepSeconds = rounds };
        // Rounds 1 and 2 agree (rho 1), round 3 is reversed (rho -1 with each): (1 - 1 - 1) / 3.
        var rows = new[] { Row("NNN", 1, 1, 3), Row("NIG", 2, 2, 2), Row("GGG", 3, 3, 1) };
        Assert.Equal(-1.0 / 3, Ranking.AgreementOfRounds(rows)!.Value, 12);
        Assert.Null(Ranking.AgreementOfRounds([Row("NNN", 1), Row("GGG", 2)]));
        Assert.Equal(-1.0 / 3, Ranking.Of("inproc", 1, rows).RoundsAgreement!.Value, 12);
    }
}
