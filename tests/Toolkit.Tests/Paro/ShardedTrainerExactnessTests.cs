using Toolkit.Jobs;
using Toolkit.Comm;
using Toolkit.Paro;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Every trained strategy, n = 4 ranks in groups of m = 2, A = 2, must end with the same parameters as plain TorchSharp
/// training (torch.optim.AdamW, one process) on the same global batch: fp32, ‖sharded − reference‖ /
/// ‖reference‖ ≤ 1e-5 after 3 steps, on in-process ranks and on MPI processes (mpiexec -n 4, through the job host
/// and <c>toolkit rank</c>); and so must layer-wise execution (each block gathered for its forward, gathered again to
/// recompute it in backward) on a small GPT.
/// </summary>
public sealed class ShardedTrainerExactnessTests
{
    private const int Ranks = 4, GroupSize = 2, Accumulation = 2, Steps = 3;
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Strategies() => [.. ShardingStrategy.Trained.Select(s => s.Code)];

    [Theory]
    [MemberData(nameof(Strategies))]
    public void InProcess_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize,
            Accumulation, Steps));
        AssertMatches(code, reference, results);
    }

    [Theory]
    [MemberData(nameof(Strategies))]
    public void InProcess_Layerwise_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize,
            Accumulation, Steps, layerwise: true));
        AssertMatches($"{code}/layerwise", reference, results);
    }

    /// <summary>
    /// Gradient clipping to a global norm (0.05 for the MLP, 0.005 for the small GPT, limits the gradients exceed) ends
    /// where <c>torch.nn.utils.clip_grad_norm_</c> before <c>torch.optim.AdamW</c> ends, whichever level the optimizer
    /// states are sharded at; AdamW's epsilon is raised to the same size so the clip's scale shows in the update (at
    /// 1e-8 Adam would all but normalise it away). Without the clip the reference ends elsewhere.
    /// </summary>
    [Theory]
    [InlineData("NNN", false)]
    [InlineData("NIG", false)]
    [InlineData("GGG", false)]
    [InlineData("IIG", false)]
    [InlineData("GGG", true)]
    [InlineData("NII", true)]
    public void InProcess_WithGradientClipping_MatchesClipGradNorm(string code, bool layerwise)
    {
        TorchRuntime.EnsureInitialized();
        var limit = layerwise ? 0.005 : 0.05;
        var adam = ExactnessProbe.Adam with { MaxGradNorm = limit, Epsilon = limit };
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise, adam: adam);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize,
            Accumulation, Steps, layerwise: layerwise, adam: adam));
        AssertMatches($"{code}{(layerwise ? "/layerwise" : "")}/clipped", reference, results);
        var unclipped = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise,
            adam: adam with { MaxGradNorm = 0 });
        Assert.True(ExactnessProbe.RelativeError(unclipped, reference) > 100 * Tolerance, "the clip did not bind");
    }

    /// <summary>
    /// Layer-wise variants: activations recomputed in each block's backward instead of recorded in its forward; no
    /// prefetch (every block shares one slot, gathered when it runs); and micro-batches that run the model twice, whose
    /// second forward must not take a gather queued during the first (for its backward) whose slot another block's
    /// gather has overwritten since.
    /// </summary>
    [Theory]
    [InlineData("GGG", true, true, false)]
    [InlineData("NII", true, true, false)]
    [InlineData("NNN", true, true, false)]
    [InlineData("GGG", false, false, false)]
    [InlineData("IIG", false, false, false)]
    [InlineData("GGG", false, true, true)]
    [InlineData("GGG", false, false, true)]
    [InlineData("IGG", false, true, true)]
    public void InProcess_LayerwiseVariants_MatchSingleProcessTraining(string code, bool recompute, bool prefetch,
        bool twice)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true, twice: twice);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm =>
            ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, layerwise: true, recompute: recompute,
                prefetch: prefetch, twice: twice));
        AssertMatches(
            $"{code}/layerwise{(recompute ? "/recompute" : "")}{(prefetch ? "" : "/no prefetch")}{(twice ? "/two " +
                "forwards" : "")}", reference, results);
    }

    /// <summary>A micro-batch that throws (on every rank, after the forward's gathers) abandons the step: the next step
    /// runs and trains as if it never happened.</summary>
    [Fact]
    public void AFailedMicroBatch_AbandonsTheStep_AndTheTrainerGoesOn()
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, 1, 1, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, "GGG", GroupSize, 1, 1,
            layerwise: true, failFirstStep: true));
        AssertMatches("GGG/layerwise after a failed step", reference, results);
    }

    [Theory]
    [InlineData("NNN", CollectiveAlgorithm.HoRing)]
    [InlineData("NNN", CollectiveAlgorithm.Hierarchical)]
    [InlineData("NIG", CollectiveAlgorithm.HoRing)]
    [InlineData("GGG", CollectiveAlgorithm.Native)]
    public void OtherCollectiveAlgorithms_MatchSingleProcessTraining(string code, CollectiveAlgorithm algorithm)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize,
            Accumulation, Steps, algorithm));
        AssertMatches($"{code}/{algorithm}", reference, results);
    }

    [Fact]
    public async Task Mpi_EveryStrategy_MatchesSingleProcessTraining()
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps);
        using var runs = new TemporaryFolder("toolkit-paro-mpi-");
        var outcomes = await JobHost.RunAsync(new ParoSelfTestJob(), new ParoSelfTestOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Ranks = Ranks, GroupSize = GroupSize, RunsDirectory = runs.Path },
            Accumulation = Accumulation,
            Steps = Steps,
            Layerwise = true,
        });
        var layerwiseReference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true);
        foreach (var code in ShardingStrategy.Trained.Select(s => s.Code))
        {
            AssertMatches(code, reference, [.. outcomes.Select(o => o[code])]);
            AssertMatches($"{code}/layerwise", layerwiseReference, [.. outcomes.Select(o => o[$"{code}/layerwise"])]);
        }
    }

    private static void AssertMatches(string code, float[] reference, float[][] results)
    {
        foreach (var parameters in results)
        {
            var error = ExactnessProbe.RelativeError(parameters, reference);
            Assert.True(error <= Tolerance, $"{code}: relative error {error:E2} > {Tolerance:E0}");
        }
        Assert.True(results.All(r => r.SequenceEqual(results[0])), $"{code}: ranks disagree");
    }
}
