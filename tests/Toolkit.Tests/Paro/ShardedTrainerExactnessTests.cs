using Toolkit.Jobs;
using Toolkit.Comm;
using Toolkit.Paro;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Every trained strategy, n = 4 ranks in groups of m = 2, A = 2, must end with the same parameters
/// as plain TorchSharp training (torch.optim.AdamW, one process) on the same global batch: fp32,
/// ‖sharded − reference‖ / ‖reference‖ ≤ 1e-5 after 3 steps, on in-process ranks and on MPI
/// processes (mpiexec -n 4, through the job host and <c>toolkit rank</c>); and so must layer-wise execution
/// (each block gathered for its forward, gathered again to recompute it in backward) on a small GPT.
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
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps));
        AssertMatches(code, reference, results);
    }

    [Theory]
    [MemberData(nameof(Strategies))]
    public void InProcess_Layerwise_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, layerwise: true));
        AssertMatches($"{code}/layerwise", reference, results);
    }

    /// <summary>Layer-wise with activations recomputed in each block's backward instead of recorded in its forward.</summary>
    [Theory]
    [InlineData("GGG")]
    [InlineData("NII")]
    [InlineData("NNN")]
    public void InProcess_LayerwiseRecompute_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, layerwise: true, recompute: true));
        AssertMatches($"{code}/layerwise/recompute", reference, results);
    }

    /// <summary>Layer-wise without prefetch: every block shares one slot, gathered when it runs.</summary>
    [Theory]
    [InlineData("GGG")]
    [InlineData("IIG")]
    public void InProcess_LayerwiseWithoutPrefetch_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, layerwise: true, prefetch: false));
        AssertMatches($"{code}/layerwise/no prefetch", reference, results);
    }

    /// <summary>
    /// A micro-batch that runs the model twice: the second forward's blocks must not take a gather queued during the
    /// first (for its backward) whose slot another block's gather has overwritten since; with and without prefetch.
    /// </summary>
    [Theory]
    [InlineData("GGG", true)]
    [InlineData("GGG", false)]
    [InlineData("IGG", true)]
    public void InProcess_LayerwiseTwoForwardsPerMicroBatch_MatchesSingleProcessTraining(string code, bool prefetch)
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, layerwise: true, twice: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, layerwise: true, prefetch: prefetch, twice: true));
        AssertMatches($"{code}/layerwise/two forwards{(prefetch ? "" : "/no prefetch")}", reference, results);
    }

    /// <summary>A micro-batch that throws (on every rank, after the forward's gathers) abandons the step: the next step runs and trains as if it never happened.</summary>
    [Fact]
    public void AFailedMicroBatch_AbandonsTheStep_AndTheTrainerGoesOn()
    {
        TorchRuntime.EnsureInitialized();
        var reference = ExactnessProbe.Reference(Ranks, 1, 1, layerwise: true);
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, "GGG", GroupSize, 1, 1, layerwise: true, failFirstStep: true));
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
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize, Accumulation, Steps, algorithm));
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
