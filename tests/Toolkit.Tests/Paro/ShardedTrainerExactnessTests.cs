using Toolkit.Comm;
using Toolkit.Paro;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Every trained strategy, n = 4 in-process ranks in groups of m = 2, A = 2, must end with the same
/// parameters as plain TorchSharp training (torch.optim.AdamW, one process) on the same global batch:
/// fp32, relative error at most 1e-5 of the parameter norm after 3 steps.
/// </summary>
public sealed class ShardedTrainerExactnessTests
{
    private const int Ranks = 4, GroupSize = 2, Accumulation = 2, Steps = 3, Seed = 7;
    private static readonly AdamWOptions Adam = new() { LearningRate = 0.01, WeightDecay = 0.1 };

    public static TheoryData<string> Strategies() => [.. ShardingStrategy.Trained.Select(s => s.Code)];

    [Theory]
    [MemberData(nameof(Strategies))]
    public void Strategy_MatchesSingleProcessTraining(string code)
    {
        TorchRuntime.EnsureInitialized();
        var reference = Reference();
        var results = InProcessCluster.Run(Ranks, GroupSize, comm =>
        {
            using var model = NewModel();
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse(code), GroupSize, Accumulation), comm, Adam);
            for (var step = 0; step < Steps; step++)
                trainer.Step([.. Enumerable.Range(0, Accumulation).Select(a => MicroBatch(step, a * Ranks + comm.Rank))]);
            return trainer.GatherParameters();
        });
        foreach (var parameters in results)
        {
            var error = Math.Sqrt(parameters.Zip(reference, (a, b) => (double)(a - b) * (a - b)).Sum());
            var norm = Math.Sqrt(reference.Sum(v => (double)v * v));
            Assert.True(error / norm <= 1e-5, $"{code}: relative error {error / norm:E2}");
        }
        Assert.True(results[0].SequenceEqual(results[^1]), $"{code}: ranks disagree");
    }

    /// <summary>Plain TorchSharp: one model, every micro-batch of the global batch, loss averaged over n·A micro-batches.</summary>
    private static float[] Reference()
    {
        using var model = NewModel();
        var optimizer = optim.AdamW(model.parameters(), lr: Adam.LearningRate, beta1: Adam.Beta1, beta2: Adam.Beta2, eps: Adam.Epsilon, weight_decay: Adam.WeightDecay);
        for (var step = 0; step < Steps; step++)
        {
            optimizer.zero_grad();
            for (var micro = 0; micro < Ranks * Accumulation; micro++)
            {
                using var scope = NewDisposeScope();
                (MicroBatch(step, micro)(model) / (Ranks * Accumulation)).backward();
            }
            optimizer.step();
        }
        return model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
    }

    private static readonly Lock InitGate = new();

    private static nn.Module NewModel()
    {
        lock (InitGate)   // the global seed: every rank builds identical initial weights
        {
            manual_seed(Seed);
            return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3));   // 42 + 24 = 66 parameters: not divisible by 4, so padding is exercised
        }
    }

    private static Func<nn.Module, Tensor> MicroBatch(int step, int index) => model =>
    {
        using var generator = new Generator((ulong)(1000 * step + index + 1));
        var x = randn([6, 5], generator: generator);
        var y = randn([6, 3], generator: generator);
        return nn.functional.mse_loss(((nn.Module<Tensor, Tensor>)model).call(x), y);
    };
}
