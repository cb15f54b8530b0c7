using Toolkit.Comm;
using Toolkit.Paro;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Tests.Paro;

/// <summary>
/// The engine's measured memory (from its buffers) and traffic (from the communicator's counters) must equal the cost
/// model's prediction exactly, for every trained strategy, A = 1 and A = 4, fp32 and bf16, on n = 4 in-process ranks in
/// groups of m = 2. Ψ is the padded parameter count.
/// </summary>
public sealed class MeasuredVersusModelTests
{
    private const int Ranks = 4, GroupSize = 2;

    public static TheoryData<string, int, ParoPrecision> Cases()
    {
        var data = new TheoryData<string, int, ParoPrecision>();
        foreach (var s in ShardingStrategy.Trained)
            foreach (var a in new[] { 1, 4 })
                foreach (var p in new[] { ParoPrecision.Fp32, ParoPrecision.Bf16 })
                    data.Add(s.Code, a, p);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MemoryAndTraffic_EqualTheCostModel(string code, int accumulation, ParoPrecision precision)
    {
        TorchRuntime.EnsureInitialized();
        var strategy = ShardingStrategy.Parse(code);
        var measured = InProcessCluster.Run(Ranks, GroupSize, comm =>
        {
            // 110 + 24 = 134 parameters, padded to 136
            using var model = nn.Sequential(nn.Linear(9, 11), nn.Tanh(), nn.Linear(11, 2));
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(strategy, GroupSize, accumulation,
                precision), comm);
            var before = comm.Counters.Snapshot();
            trainer.Step([.. Enumerable.Range(0, accumulation).Select(_ => (Func<nn.Module, Tensor>)(m =>
                ((nn.Module<Tensor, Tensor>)m).call(ones(3, 9,
                    dtype: m.parameters().First().dtype)).to(ScalarType.Float32).square().mean()))]);
            var traffic = comm.Counters.Snapshot().Since(before);
            return (trainer.PaddedParameterCount, trainer.Memory, traffic.IntraBytes, traffic.InterBytes);
        });
        var psi = measured[0].PaddedParameterCount;
        Assert.Equal(136, psi);
        var cluster = new ClusterSpec("test", Ranks, GroupSize, 1e12, 1e9, 1e9, 0, 0, 1e12, 1e12);
        var estimate = CostModel.Estimate(strategy, new ModelSpec("mlp", psi, psi, 1, 1), cluster,
            new TrainingSpec(accumulation, 1, 1, precision, ParameterGathersPerMicroStep: 1,
                Gathering: GatherGranularity.Model));
        foreach (var (_, memory, intra, inter) in measured)
        {
            Assert.Equal(estimate.Memory.Parameters, memory.ParametersBytes);
            Assert.Equal(estimate.Memory.Gradients, memory.GradientsBytes);
            Assert.Equal(estimate.Memory.Optimizer, memory.OptimizerBytes);
            Assert.Equal(estimate.IntraBytesPerStep, intra);
            Assert.Equal(estimate.InterBytesPerStep, inter);
        }
    }

    /// <summary>
    /// Layer-wise execution on a small GPT (3 blocks) measured against <see cref="LayerwiseCostModel"/>: each of the
    /// four buffers (root, blocks) is padded on its own, so Ψ is their padded sum; the model's bytes (the root
    /// gathered once per micro-step, each block twice, the root's gradient reduced twice) and its peak transient equal
    /// the engine's counters and buffers exactly. Here the root is smaller than a block, so the last block's backward
    /// (root gradient beside a block's) does not set the peak; the test with a larger root covers it.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Layerwise_MemoryAndTraffic_EqualTheCostModel(string code, int accumulation, ParoPrecision precision) =>
        AssertLayerwiseEqualsTheCostModel(code, accumulation, precision, prefetch: true);

    /// <summary>Without prefetch the bytes are the same; the peak holds one block's gathered parameters instead of two
    /// (gradients still two: one written, one being reduced).</summary>
    [Theory]
    [InlineData("GGG", 2)]
    [InlineData("IGG", 1)]
    [InlineData("NIG", 2)]
    [InlineData("III", 1)]
    public void LayerwiseWithoutPrefetch_MemoryAndTraffic_EqualTheCostModel(string code, int accumulation) =>
        AssertLayerwiseEqualsTheCostModel(code, accumulation, ParoPrecision.Fp32, prefetch: false);

    /// <summary>
    /// A root larger than a block (a vocabulary of 200: root 1,260 parameters, blocks 510): in the last block's
    /// backward the root's gradient, still being reduced, sits beside that block's, which sets the peak when parameters
    /// are not gathered.
    /// </summary>
    [Theory]
    [InlineData("NIG", 2)]
    [InlineData("NGG", 1)]
    [InlineData("GGG", 2)]
    [InlineData("IGG", 1)]
    public void LayerwiseWithARootLargerThanABlock_MemoryAndTraffic_EqualTheCostModel(string code, int accumulation) =>
        AssertLayerwiseEqualsTheCostModel(code, accumulation, ParoPrecision.Fp32, prefetch: true, vocabulary: 200);

    private static void AssertLayerwiseEqualsTheCostModel(string code, int accumulation, ParoPrecision precision,
        bool prefetch, int vocabulary = 13)
    {
        TorchRuntime.EnsureInitialized();
        var strategy = ShardingStrategy.Parse(code);
        var config = new Toolkit.Models.GptConfig(VocabularySize: vocabulary, ContextLength: 8, Layers: 3, Heads: 2,
            Embedding: 6);   // root 6V + 60, blocks 510 parameters
        var (rootPadded, block) = ((6 * vocabulary + 60 + Ranks - 1) / Ranks * Ranks, 512);
        var measured = InProcessCluster.Run(Ranks, GroupSize, comm =>
        {
            using var model = Toolkit.Models.Gpt.Create(config, seed: 3);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(strategy, GroupSize, accumulation,
                precision, Layerwise: true, Prefetch: prefetch), comm);
            var before = comm.Counters.Snapshot();
            trainer.Step([.. Enumerable.Range(0, accumulation).Select(a => (Func<nn.Module, Tensor>)(m =>
                ((Toolkit.Models.Gpt)m).Loss(tensor(Enumerable.Repeat((long)(a + comm.Rank), 16).ToArray(), [2, 8]),
                    ones([2, 8], dtype: ScalarType.Int64))))]);
            var traffic = comm.Counters.Snapshot().Since(before);
            return (trainer.PaddedParameterCount, trainer.PaddedRootCount, trainer.Memory, traffic.IntraBytes,
                traffic.InterBytes);
        });
        var (psi, root) = (measured[0].PaddedParameterCount, measured[0].PaddedRootCount);
        Assert.Equal(rootPadded + 3 * block, psi);
        Assert.Equal(rootPadded, root);
        var cluster = new ClusterSpec("test", Ranks, GroupSize, 1e12, 1e9, 1e9, 0, 0, 1e12, 1e12);
        var training = new TrainingSpec(accumulation, 1, 1, precision);
        var predicted = LayerwiseCostModel.Estimate(strategy, new ModelSpec("gpt", psi, psi, 3, 6), root, block,
            cluster, training, prefetch);
        // From the model's shape alone (what paro plan --layerwise has), padding each unit as the engine does.
        var planned = LayerwiseCostModel.Estimate(strategy, new ModelSpec("gpt", config.ParameterCount,
            config.ParameterCount, 3, 6, config.RootParameterCount), cluster, training, prefetch);
        Assert.Equal((predicted.IntraBytesPerStep, predicted.InterBytesPerStep, predicted.Memory),
            (planned.IntraBytesPerStep, planned.InterBytesPerStep, planned.Memory));
        foreach (var (_, _, memory, intra, inter) in measured)
        {
            Assert.Equal(predicted.Memory.Parameters, memory.ParametersBytes);
            Assert.Equal(predicted.Memory.Gradients, memory.GradientsBytes);
            Assert.Equal(predicted.Memory.Optimizer, memory.OptimizerBytes);
            Assert.Equal(predicted.IntraBytesPerStep, intra);
            Assert.Equal(predicted.InterBytesPerStep, inter);
            Assert.Equal(predicted.Memory.GatheredParameters, memory.PeakTransientBytes);
        }
    }

    [Fact]
    public void PaperWorkedExample_65B_OnSixtyFourGpus_MatchesTheDerivedTable()
    {
        // papers.md: GiB per GPU for 65B, n = 64, m = 8, full training, mixed precision.
        var expected = new Dictionary<string, double> { ["GGG"] = 15.1, ["IGG"] = 28.4, ["IIG"] = 41.6,
            ["III"] = 121.1, ["NIG"] = 147.6, ["NGG"] = 134.3, ["NNG"] = 253.5, ["NNN"] = 968.6 };
        var model = new ModelSpec("65b", 65e9, 65e9, 80, 8192);
        var cluster = ClusterSpec.NvLinkNodes(64, 200);
        foreach (var (code, gib) in expected)
        {
            var e = CostModel.Estimate(ShardingStrategy.Parse(code), model, cluster, new TrainingSpec(1, 1, 2048));
            Assert.Equal(gib, e.Memory.ModelStates / (1024.0 * 1024 * 1024), 1);
        }
    }

    [Fact]
    public void InterGroupVolumes_ReproduceThePapersMultiplesOfU()
    {
        // u = (g-1)/g * 2Ψ/m; with ZeRO-3's re-gather before backward (2 gathers per micro-step) GGG is 3A·u.
        var model = new ModelSpec("7b", 6.4e9, 6.4e9, 32, 4096);
        var cluster = ClusterSpec.NvLinkNodes(32, 100);
        const int a = 4;
        double g = 32 / 8, u = (g - 1) / g * 2 * model.TotalParameters / 8;
        var training = new TrainingSpec(a, 1, 2048, ParameterGathersPerMicroStep: 2);
        var multiples = new Dictionary<string, double> { ["GGG"] = 3 * a, ["NGG"] = a + 1, ["IGG"] = a + 1,
            ["NNN"] = 2, ["NNG"] = 2, ["NIG"] = 2, ["IIG"] = 2, ["NII"] = 2, ["III"] = 2, ["ING"] = 2 };
        foreach (var (code, k) in multiples)
            Assert.Equal(k * u, CostModel.Estimate(ShardingStrategy.Parse(code), model, cluster,
                training).InterBytesPerStep, 6);
    }
}
