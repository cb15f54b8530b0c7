using Toolkit.Comm;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// The parity check of sharded training, shared by the in-process tests and the MPI self-test
/// (<see cref="ParoSelfTestJob"/>, under mpiexec): a small network (parameter count not divisible by the rank
/// count, so padding is exercised), deterministic micro-batches indexed by (step, a·n + rank), and
/// the single-process reference with <c>torch.optim.AdamW</c> on the same global batch.
/// </summary>
internal static class ExactnessProbe
{
    public static readonly AdamWOptions Adam = new() { LearningRate = 0.01, WeightDecay = 0.1 };
    private const int Seed = 7;
    private static readonly Lock InitGate = new();

    /// <summary>Sharded training on <paramref name="comm"/>; every rank returns the full parameters after <paramref name="steps"/> steps.</summary>
    public static float[] Train(Communicator comm, string code, int groupSize, int accumulation, int steps, CollectiveAlgorithm algorithm = CollectiveAlgorithm.Ring)
    {
        comm.Algorithm = algorithm;
        using var model = NewModel();
        using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse(code), groupSize, accumulation), comm, Adam);
        for (var step = 0; step < steps; step++)
            trainer.Step([.. Enumerable.Range(0, accumulation).Select(a => MicroBatch(step, a * comm.Size + comm.Rank))]);
        return trainer.GatherParameters();
    }

    /// <summary>Plain TorchSharp on one model: every micro-batch of the global batch, loss averaged over n·A micro-batches.</summary>
    public static float[] Reference(int ranks, int accumulation, int steps)
    {
        using var model = NewModel();
        var optimizer = optim.AdamW(model.parameters(), lr: Adam.LearningRate, beta1: Adam.Beta1, beta2: Adam.Beta2, eps: Adam.Epsilon, weight_decay: Adam.WeightDecay);
        for (var step = 0; step < steps; step++)
        {
            optimizer.zero_grad();
            for (var micro = 0; micro < ranks * accumulation; micro++)
            {
                using var scope = NewDisposeScope();
                (MicroBatch(step, micro)(model) / (ranks * accumulation)).backward();
            }
            optimizer.step();
        }
        return model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
    }

    /// <summary>‖a − b‖ / ‖b‖.</summary>
    public static double RelativeError(float[] a, float[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Sum()) / Math.Sqrt(b.Sum(v => (double)v * v));

    private static nn.Module NewModel()
    {
        lock (InitGate)   // the global seed: every rank builds identical initial weights
        {
            manual_seed(Seed);
            return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3));   // 66 parameters
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
