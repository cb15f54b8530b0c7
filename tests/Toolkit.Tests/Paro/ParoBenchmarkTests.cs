using Toolkit.Paro;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Paro;

/// <summary>
/// <c>bench paro</c> end to end on in-process ranks (the tiny GPT, two short rounds): every strategy's measured bytes
/// equal the calibrated model's, the calibration's constants are measured, and each ranking carries the recommendation
/// and the pairs the rounds resolve. Times are not checked: they are what the benchmark reports, not what a test can
/// assert.
/// </summary>
public sealed class ParoBenchmarkTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-bench-paro-");

    public void Dispose() => _runs.Dispose();

    [Fact]
    public async Task InProcess_TwoRounds_BytesEqualTheModel_AndRankingsJudgeTheRecommendation()
    {
        var options = new ParoBenchmarkOptions
        {
            Launch = new() { Ranks = 4, GroupSize = 2, RunsDirectory = _runs.Path },
            Model = new() { Name = "tiny" }, Data = new() { MicroBatch = 2 },
            Steps = 3, Accumulations = "1,2", Rounds = 2, SkipMpi = true,
        };
        var report = await ParoBenchmark.RunAsync(options);

        var c = report.Calibration;
        foreach (var constant in new[] { c.IntraBandwidth, c.InterBandwidth, c.ComputeFlops, c.MemoryBandwidth })
            Assert.True(double.IsFinite(constant) && constant > 0, $"calibration {c}");
        Assert.Equal(["inproc"], report.Calibrations.Keys);

        Assert.Equal(ShardingStrategy.Trained.Count * 2, report.Runs.Count);
        foreach (var row in report.Runs)
        {
            Assert.Equal(2, row.RoundStepSeconds.Count);
            Assert.Equal(row.PredictedIntraBytesPerStep, row.IntraBytesPerStep);
            Assert.Equal(row.PredictedInterBytesPerStep, row.InterBytesPerStep);
            Assert.True(double.IsFinite(row.FinalLoss), $"{row.Strategy} A={row.Accumulation} loss {row.FinalLoss}");
        }

        Assert.Equal([1, 2], report.Rankings.Select(r => r.Accumulation).Order());
        foreach (var ranking in report.Rankings)
        {
            var rows = report.Runs.Where(r => r.Accumulation == ranking.Accumulation).ToList();
            var best = rows.Min(r => r.StepSeconds);
            Assert.Equal(ranking.PredictedOrder[0], ranking.Recommended);
            Assert.Equal(rows.Single(r => r.Strategy == ranking.Recommended).StepSeconds / best,
                ranking.RecommendedOverBest, 12);
            Assert.Equal(rows.Single(r => r.Strategy == "GGG").StepSeconds / best, ranking.GggOverBest!.Value, 12);
            var pairs = ranking.Pairs!;
            Assert.Equal(rows.Count * (rows.Count - 1) / 2, pairs.Total);
            Assert.InRange(pairs.Agreeing, 0, pairs.Resolved);
            Assert.InRange(pairs.Resolved, 0, pairs.Total);
            Assert.NotNull(ranking.RoundsAgreement);
        }
    }
}
