using Toolkit.Rl;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Rl;

/// <summary><c>bench rl</c>: one synchronous and one C3PO++ run per batch size, at the same budget, and its bad
/// input.</summary>
public sealed class RlBenchmarkTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-rl-bench-");

    public void Dispose() => _runs.Dispose();

    private RlBenchmarkOptions Options(string prompts, int repeats = 1) => new()
    {
        Prompts = prompts, Repeats = repeats,
        Job = new RlBenchmarkOptions().Job with
        {
            Launch = new() { Ranks = 2, GroupSize = 1, RunsDirectory = _runs.Path },
            // the long-tail answers need the small GPT's context
            Model = new() { Name = "small" }, WarmupSteps = 5, Steps = 3, EvalEvery = 3,
        },
    };

    [Fact]
    public async Task EachSize_RunsSyncThenC3po_AtTheBudgetTheSyncBatchTrainedOn_WithTheBreakdown()
    {
        var o = Options("4,8");
        var report = await RlBenchmark.RunAsync(o);
        var meanResponse = TaskDatasets.Load(VerifiableTask.Named("longtail"),
            heldOut: false).Average(p => p.Answer.Length + 1.0);
        Assert.Equal([4, 8], report.Sizes.Select(s => s.Prompts));
        Assert.All(report.Sizes, size =>
        {
            Assert.Equal(["sync", "c3po++"], size.Runs.Select(r => r.Rollout));
            var (sync, c3po) = (size.Runs[0], size.Runs[1]);
            // the baseline's budget (its loss normaliser) is the estimate; C3PO++'s is what the baseline trained on
            Assert.Equal((long)Math.Round(size.Prompts * 4 * meanResponse), sync.Budget);
            Assert.Equal(Math.Max((long)Math.Round(sync.TrainedTokensPerStep),
                2L * VerifiableTask.Named("longtail").MaxCompletionTokens), c3po.Budget);
            Assert.Equal(c3po.Budget, size.Budget);
            Assert.All(size.Runs, r => Assert.Equal(size.Prompts, r.Prompts));
            // the breakdown: each part of the rollout within it, the baseline throws nothing away (C3PO++ may train
            // a step on groups held back from the step before, and generate nothing)
            Assert.All(size.Runs, r => Assert.True(r.PrefillSeconds <= r.RolloutSeconds
                && r.DecodeSeconds <= r.RolloutSeconds && r.TrainSeconds > 0 && r.SyncSeconds > 0, $"{r}"));
            Assert.True(sync.PrefillSeconds > 0 && sync.PrefixTokensPerStep > 0, $"{sync}");
            Assert.Equal(0, sync.WastedTokensPerStep);
            // C3PO++ over the baseline, not the reverse
            Assert.Equal(size.Runs[1].TokensPerSecond / size.Runs[0].TokensPerSecond, size.RolloutSpeedup, 12);
            Assert.Equal(size.Runs[0].StepSeconds / size.Runs[1].StepSeconds, size.StepSpeedup, 12);
            Assert.True(sync.TokensPerSecond > 0 && c3po.TokensPerSecond >= 0);
            Assert.All(size.Runs, r => Assert.True(r.TrainedTokensPerStep > 0 && Directory.Exists(r.RunPath)));
            // the baseline finishes every response in its step
            Assert.Equal(0, size.Runs[0].Carried);
        });
    }

    /// <summary>Repeats alternate the modes' order (sync, C3PO++, C3PO++, sync) and the speed-ups compare their
    /// means.</summary>
    [Fact]
    public async Task Repeats_AlternateTheModesOrder_TheSpeedupsCompareTheirMeans()
    {
        var size = Assert.Single((await RlBenchmark.RunAsync(Options("4", repeats: 2))).Sizes);
        Assert.Equal(["sync", "c3po++", "c3po++", "sync"], size.Runs.Select(r => r.Rollout));
        var (sync, c3po) = (new[] { size.Runs[0], size.Runs[3] }, new[] { size.Runs[1], size.Runs[2] });
        Assert.Equal(c3po.Average(r => r.TokensPerSecond) / sync.Average(r => r.TokensPerSecond), size.RolloutSpeedup,
            12);
        Assert.Equal(sync.Average(r => r.StepSeconds) / c3po.Average(r => r.StepSeconds), size.StepSpeedup, 12);
        double Trained(RlBenchmarkRun[] r) => r.Average(x => x.TrainedTokensPerStep) / r.Average(x => x.StepSeconds);
        Assert.Equal(Trained(c3po) / Trained(sync), size.TrainedSpeedup, 12);
        // the same seeds: the baseline trains on the same tokens each time, C3PO++ gets the same budget
        Assert.Equal(sync[0].TrainedTokensPerStep, sync[1].TrainedTokensPerStep);
        Assert.Equal(c3po[0].Budget, c3po[1].Budget);
    }

    [Fact]
    public void NoRepeats_IsRefused() => Assert.Equal("Repeats", Assert.ThrowsAny<ArgumentException>(()
        => Options("4", repeats: 0).Check()).ParamName);

    [Theory]
    [InlineData("8,x", "is not a positive whole number")]
    [InlineData("", "names no prompt count")]
    [InlineData("3", "must be a positive multiple of --ranks (2)")]
    public void BadPromptCounts_AreRefused_NamingTheValue(string prompts, string message)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => Options(prompts).Check());
        Assert.Contains(message, error.Message);
    }
}
