using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Checkpoints;
using Toolkit.Generation;
using Toolkit.Jobs;
using Toolkit.Options;
using Toolkit.Paro;
using Toolkit.Rl;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Rl;

/// <summary>The RL job end to end on the tiny GPT: both rollout modes, in-process and under mpiexec, the JSON every
/// step writes, and bad input.</summary>
public sealed class RlTrainJobTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-rl-");

    public void Dispose() => _runs.Dispose();

    private RlTrainOptions Small(RolloutMode mode = RolloutMode.Sync, Numerics numerics = Numerics.Fp32) => new()
    {
        Launch = new() { Ranks = 2, GroupSize = 1, RunsDirectory = _runs.Path },
        Model = new() { Name = "tiny" },
        WarmupSteps = 5,
        Steps = 2,
        EvalEvery = 1,
        Rollout = new() { Mode = mode, Precision = numerics, Prompts = 4, Samples = 4, Pool = 16, Budget = 64 },
    };

    [Fact]
    public async Task Sync_WritesEveryDiagnosticPerStep_AndSyncsTheWholeModel()
    {
        var result = await RlTrainJob.RunAsync(Small());
        Assert.Equal(2, result.Steps.Count);
        var parameters = Toolkit.Models.GptConfig.Tiny.ParameterCount;
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(16, s.Responses);                                   // 4 prompts x 4 samples
            Assert.InRange(s.RewardMean, 0, 1);
            // 0 when every group's rewards agree (no advantage)
            Assert.True(s.GradNorm >= 0 && double.IsFinite(s.GradNorm));
            Assert.InRange(s.MalformedFraction, 0, 1);
            Assert.True(s.LogProbDiffMax < 1e-3, $"fp32 rollouts: |dlogp| max {s.LogProbDiffMax}");
            Assert.Equal(0, s.MaskedFraction);
            Assert.Equal(parameters * 4, s.SyncBytes);
            Assert.True(s.TokensPerSecond > 0 && s.RolloutSeconds > 0 && s.TrainSeconds > 0);
            Assert.InRange(s.HeldOutAccuracy, 0, 1);
            Assert.Equal(0, s.MaxStaleness);
            Assert.Empty(s.RoutingFlips);                                    // dense policy
            Assert.Equal(0, s.ClipFraction);                                 // one optimizer step: the ratio is 1
            Assert.Equal(1e-4, s.LearningRate);
            Assert.Equal((1.0, 0.0), (s.Current!.TokenFraction, s.Stale!.TokenFraction));
            Assert.Equal(s.KlInferTrain, s.Current.KlInferTrain, 12);
            Assert.True(double.IsNaN(s.Stale.KlInferTrain));
        });
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(result.RunPath, JobHost.ResultFile)));
        var step = json.RootElement.GetProperty("steps")[0];
        foreach (var key in new[] { "step", "rewardMean", "rewardStd", "heldOutAccuracy", "gradNorm",
            "logProbDiffMean", "logProbDiffMax", "klInferTrain",
                     "maskedFraction", "entropy", "responseLength", "tokensPerSecond", "rolloutSeconds",
                         "trainSeconds", "syncSeconds", "clipFraction", "learningRate", "current", "stale" })
            Assert.True(step.TryGetProperty(key, out _), key);
        Assert.Equal("icepop",
            json.RootElement.GetProperty("options").GetProperty("correction").GetProperty("correction").GetString());
        Assert.True(File.Exists(Path.Combine(result.RunPath, "report.html")));
    }

    /// <summary>A run is a function of its options: the same seed gives the same rewards, gradients and
    /// diagnostics.</summary>
    [Fact]
    public async Task SameSeed_SameRun_AnotherSeed_AnotherRun()
    {
        var first = await RlTrainJob.RunAsync(Small());
        var again = await RlTrainJob.RunAsync(Small());
        var other = await RlTrainJob.RunAsync(Small() with { Seed = 2 });
        double[] Trace(RlTrainResult r) => [.. r.Steps.SelectMany(s => new[] { s.RewardMean, s.GradNorm, s.Entropy,
            s.LogProbDiffMean })];
        Assert.Equal(Trace(first), Trace(again));
        Assert.NotEqual(Trace(first), Trace(other));
    }

    /// <summary>Also with in-flight weight updates (carried responses keep their cache).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task C3po_TrainsOnCompleteGroups_AndInt8RolloutsMismatch(bool inflight)
    {
        var options = Small(RolloutMode.C3poPlusPlus, Numerics.Int8) with { Steps = 3 };
        var result = await RlTrainJob.RunAsync(options with { Rollout = options.Rollout with
            { InflightUpdate = inflight } });
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(0, s.Responses % 4);                                 // whole groups only
            Assert.True(s.LogProbDiffMax > 1e-4, "int8 rollouts should differ from the fp32 trainer");
            Assert.InRange(s.MaxStaleness, 0, 2);
            // current and stale tokens split the step: their shares add to 1, their sums to the step's
            var (current, stale) = (s.Current!, s.Stale!);
            Assert.Equal(1, current.TokenFraction + stale.TokenFraction, 12);
            Assert.Equal(s.MaxStaleness > 0, stale.TokenFraction > 0);
            double Weighted(Func<VersionDiagnostics, double> f) => new[] { current, stale }
                .Where(v => v.TokenFraction > 0).Sum(v => f(v) * v.TokenFraction);
            Assert.Equal(s.KlInferTrain, Weighted(v => v.KlInferTrain), 9);
            Assert.Equal(s.LogProbDiffMean, Weighted(v => v.LogProbDiffMean), 9);
            Assert.Equal(s.MaskedFraction, Weighted(v => v.MaskedFraction), 9);
            Assert.Equal(s.LogProbDiffMax, Math.Max(current.TokenFraction > 0 ? current.LogProbDiffMax : 0,
                stale.TokenFraction > 0 ? stale.LogProbDiffMax : 0), 12);
        });
        Assert.Contains(result.Steps, s => s.Stale!.TokenFraction > 0);
        // Φ = 64 on average: the first n steps trained at least n × 64 tokens
        var trained = result.Steps.Select(s => s.Responses * s.ResponseLength).ToList();
        for (var n = 1; n <= trained.Count; n++)
            Assert.True(trained.Take(n).Sum() >= n * 64 - 1e-6, $"steps 1-{n}: {trained.Take(n).Sum()} tokens");
    }

    [Theory]
    [InlineData(Numerics.Fp32)]
    [InlineData(Numerics.Bf16)]
    public async Task MoePolicy_ReportsRoutingFlipsPerLayer_NoneWhenTheNumericsMatch(Numerics numerics)
    {
        var result = await RlTrainJob.RunAsync(Small(numerics: numerics) with { Policy = PolicyKind.Moe, Experts = 4,
            TopK = 2 });
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(2, s.RoutingFlips.Count);                            // the tiny GPT has two blocks
            Assert.All(s.RoutingFlips, f => Assert.InRange(f, 0, 1));
            if (numerics == Numerics.Fp32) Assert.All(s.RoutingFlips, f => Assert.Equal(0, f));
        });
        Assert.Equal(Toolkit.Models.GptConfig.Tiny.WithExperts(4).ParameterCount * 4, result.Steps[0].SyncBytes);
    }

    [Fact]
    public async Task Mpi_RunsTheSameJobOnProcesses()
    {
        var result = await RlTrainJob.RunAsync(Small() with { Launch = Small().Launch with { Launcher = Launcher.Mpi },
            Steps = 1 });
        Assert.Single(result.Steps);
        Assert.Equal(16, result.Steps[0].Responses);
        Assert.Equal(2, Directory.GetFiles(Path.Combine(result.RunPath, JobHost.OutcomesFolder), "rank-*.json").Length);
    }

    [Fact]
    public async Task Divergence_StopsWithTheStepAndTheDiagnostic_AndKeepsTheRunFolder()
    {
        // The long-tail task after a short warm start gives groups with mixed rewards, hence a non-zero gradient.
        var options = Small() with
        {
            Task = "longtail", Model = new() { Name = "small" }, WarmupSteps = 30, WarmupLr = 3e-3, StopGradNorm = 1e-9,
            Launch = Small().Launch with { Ranks = 1 }, Rollout = Small().Rollout with { Budget = 48, Prompts = 8 },
        };
        var e = await Assert.ThrowsAsync<RlDivergedException>(() => RlTrainJob.RunAsync(options));
        Assert.Contains("RL step 0: the gradient norm", e.Message);
        Assert.Contains("--stop-grad-norm", e.Message);
        var run = Assert.Single(Directory.GetDirectories(_runs.Path));
        Assert.Contains("failed", File.ReadAllText(Path.Combine(run, "log.txt")));
        Assert.Contains("rl.warmup_loss", File.ReadAllText(Path.Combine(run, "metrics.jsonl")));
    }

    [Fact]
    public void C3poBudget_SmallerThanOneResponse_IsRefused()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => OptionBinder.Bind(new RlRunOptions(), [new("--budget", "5"),
            new("--rollout", "c3po++")], "rl train").Validate());
        Assert.Equal("--budget 5: is smaller than one response per rank (6 tokens for addition, 2 ranks)",
            OptionException.Describe(e, OptionSchema.For<RlRunOptions>()));
        // the synchronous baseline does not use the budget
        OptionBinder.Bind(new RlRunOptions(), [new("--budget", "5")], "rl train").Validate();
    }

    [Theory]
    [InlineData("--task", "chess",
        "--task chess: unknown task; valid: addition, multiplication, countdown, longtail, wordproblems")]
    [InlineData("--task", "wordproblems", "--model small: its context (64) is too short for the prompts of " +
        "wordproblems (up to 94 tokens) and its 40-token answers")]
    [InlineData("--beta", "0.4",
        "--beta 0.4: must be greater than --alpha (0.5): the band [alpha, beta] would be empty")]
    [InlineData("--rollout", "async", "--rollout must be one of sync, c3po++ (got 'async').")]
    [InlineData("--compare", "none,magic", "--compare magic: is not a correction; valid: none, tis, icepop, mis")]
    [InlineData("--ppo-epochs", "0", "--ppo-epochs 0: must be at least 1")]
    [InlineData("--mini-batches", "200",
        "--mini-batches 200: is more than the 128 responses a rank is sure to have per step")]
    [InlineData("--clip-low", "1",
        "--clip-low 1: must be in (0, 1): the ratio's lower bound 1 - clip-low must stay positive")]
    [InlineData("--clip-high", "0", "--clip-high 0: must be positive")]
    [InlineData("--loss-agg", "sum", "--loss-agg must be one of token-mean, seq-mean-token-mean, seq-mean-token-sum, " +
        "seq-mean-token-sum-norm, budget (got 'sum').")]
    [InlineData("--entropy-coeff", "-0.1", "--entropy-coeff -0.1: must not be negative")]
    [InlineData("--lr-warmup-steps", "-1", "--lr-warmup-steps -1: must not be negative")]
    [InlineData("--min-lr-ratio", "2", "--min-lr-ratio 2: must be in [0, 1]")]
    [InlineData("--max-grad-norm", "-1", "--max-grad-norm -1: must be finite, 0 or more")]
    [InlineData("--max-sample-batches", "0", "--max-sample-batches 0: must be at least 1")]
    [InlineData("--normalization", "budget", "--normalization was replaced by --loss-agg: seq-mean-token-mean (GRPO, " +
        "was sequence), budget (C3PO), token-mean (DAPO), seq-mean-token-sum or seq-mean-token-sum-norm (Dr. GRPO).")]
    public void BadInput_IsRefusedNamingTheOption(string option, string value, string message)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => OptionBinder.Bind(new RlRunOptions(), [new(option, value)],
            "rl train").Validate());
        Assert.Equal(message, OptionException.Describe(e, OptionSchema.For<RlRunOptions>()));
    }

    [Fact]
    public void InflightUpdate_WithSynchronousRollouts_IsRefused()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => OptionBinder.Bind(new RlRunOptions(),
            [new("--inflight-update", null)], "rl train").Validate());
        Assert.Equal("--inflight-update: applies to C3PO++ rollouts only (--rollout c3po++): synchronous rollouts " +
            "carry nothing over", OptionException.Describe(e, OptionSchema.For<RlRunOptions>()));
    }

    [Fact]
    public void DynamicSampling_WithC3po_IsRefused()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => OptionBinder.Bind(new RlRunOptions(),
            [new("--dynamic-sampling", null), new("--rollout", "c3po++")], "rl train").Validate());
        Assert.EndsWith("refills a synchronous batch; use it with --rollout sync",
            OptionException.Describe(e, OptionSchema.For<RlRunOptions>()));
    }

    /// <summary>
    /// A run saved at step 2 of 4 and resumed from there ends where the run that went on ends: the same record for
    /// every step and the same final policy (policy, AdamW state, the samplers' generators and the prompt streams
    /// are all saved). The final policy is always saved, and batch inference serves it.
    /// </summary>
    [Fact]
    public async Task Resume_ContinuesTheSameTrajectory_AndTheSavedPolicyIsServed()
    {
        // Addition after a short warm start gives groups with mixed rewards, so the policy moves after the save.
        var options = Small() with { Model = new() { Name = "small" }, WarmupSteps = 100, WarmupLr = 3e-3,
            Steps = 4, EvalEvery = 2, Rollout = Small().Rollout with { Prompts = 8 } };
        var whole = await RlTrainJob.RunAsync(options with { Checkpoint = new() { Every = 2 } });
        Assert.Contains(whole.Steps.Skip(2), s => s.GradNorm > 0);
        var halfway = Path.Combine(whole.RunPath, "checkpoints", "step-2");
        var resumed = await RlTrainJob.RunAsync(options with { Checkpoint = new() { ResumeFrom = halfway } });
        double[] Trace(RlTrainResult r) => [.. r.Steps.SelectMany(s => new[] { s.RewardMean, s.GradNorm, s.Entropy,
            s.LogProbDiffMean, s.HeldOutAccuracy })];
        Assert.Equal(Trace(whole), Trace(resumed));
        Assert.Equal((whole.WarmStartAccuracy, whole.FinalAccuracy),
            (resumed.WarmStartAccuracy, resumed.FinalAccuracy));
        var final = Path.Combine(whole.RunPath, "checkpoints", "step-4");
        Assert.Equal(CheckpointManifest.ReadParameters(final),
            CheckpointManifest.ReadParameters(Path.Combine(resumed.RunPath, "checkpoints", "step-4")));
        Assert.NotEqual(CheckpointManifest.ReadParameters(halfway), CheckpointManifest.ReadParameters(final));

        var input = Toolkit.Tests.BatchInference.Inputs.Jsonl(_runs.Path, 6);
        var served = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Models = new() { Pipeline = InferPipeline.Generate, Model = new() { Name = final }, MaxNewTokens = 6,
                BatchSize = 3 },
            Scheduling = new() { Workers = 1, ShardSize = 3 },
            Launch = Toolkit.Tests.BatchInference.Launches.InProcess(_runs.Path),
        });
        Assert.True(InferOutput.Verify(served.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        Assert.Equal(6, InferOutput.Rows(served.JobFolder).Count());
    }

    /// <summary>A C3PO++ run resumes with its pool: the partial rollouts carried over at the save, their groups and
    /// the ids continue, and the run ends as the one that went on.</summary>
    [Fact]
    public async Task Resume_OfAC3poRun_RestoresItsPool_AndContinuesTheSameTrajectory()
    {
        var options = Small(RolloutMode.C3poPlusPlus) with { Model = new() { Name = "small" }, WarmupSteps = 100,
            WarmupLr = 3e-3, Steps = 4, EvalEvery = 2 };
        var whole = await RlTrainJob.RunAsync(options with { Checkpoint = new() { Every = 2 } });
        Assert.True(whole.Steps[1].Carried > 0, "nothing was carried over at the save");
        var halfway = Path.Combine(whole.RunPath, "checkpoints", "step-2");
        var resumed = await RlTrainJob.RunAsync(options with { Checkpoint = new() { ResumeFrom = halfway } });
        double[] Trace(RlTrainResult r) => [.. r.Steps.SelectMany(s => new[] { s.RewardMean, s.GradNorm,
            s.LogProbDiffMean, s.Responses, s.Carried, s.Purged, s.MaxStaleness, s.HeldOutAccuracy })];
        Assert.Equal(Trace(whole), Trace(resumed));
        Assert.Equal(CheckpointManifest.ReadParameters(Path.Combine(whole.RunPath, "checkpoints", "step-4")),
            CheckpointManifest.ReadParameters(Path.Combine(resumed.RunPath, "checkpoints", "step-4")));
    }

    [Fact]
    public async Task Resume_IsRefused_ForAnotherRolloutMode_AnotherRankCount_OrNoStepsLeft()
    {
        var run = await RlTrainJob.RunAsync(Small() with { Steps = 1 });
        var saved = Path.Combine(run.RunPath, "checkpoints", "step-1");
        string Refusal(RlTrainOptions o) => OptionException.Describe(Assert.ThrowsAny<ArgumentException>(() =>
            o.Validate()), OptionSchema.For<RlTrainOptions>());
        var resume = Small() with { Steps = 3, Checkpoint = new() { ResumeFrom = saved } };
        Assert.Contains("was written by a run with --rollout sync; resume it with --rollout sync",
            Refusal(resume with { Rollout = resume.Rollout with { Mode = RolloutMode.C3poPlusPlus } }));
        Assert.Contains("was written by 2 ranks; resume it with --ranks 2",
            Refusal(resume with { Launch = resume.Launch with { Ranks = 1 }, Rollout = resume.Rollout with {
                Prompts = 4 } }));
        Assert.Contains("has done 1 steps already", Refusal(resume with { Steps = 1 }));
        Assert.Contains("is neither a checkpoint", Refusal(resume with { Checkpoint = new() {
            ResumeFrom = Path.Combine(run.RunPath, "checkpoints") } }));
        // a run folder resumes from its latest checkpoint
        (resume with { Checkpoint = new() { ResumeFrom = run.RunPath } }).Validate();
    }
}
