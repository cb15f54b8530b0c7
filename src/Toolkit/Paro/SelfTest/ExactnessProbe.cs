using Toolkit.Comm;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// The parity check of sharded training, shared by the in-process tests and the MPI self-test
/// (<see cref="ParoSelfTestJob"/>, under mpiexec): a small network (parameter count not divisible by the rank count, so
/// padding is exercised), deterministic micro-batches indexed by (step, a·n + rank), and the single-process reference
/// with <c>torch.optim.AdamW</c> on the same global batch. Layer-wise execution is checked on a small GPT (it needs a
/// model with blocks), three blocks of 510 parameters and a root of 138. A Hugging Face folder (a decoder family) is
/// trained from placeholders whose values each rank reads from the folder, only the slices its strategy keeps; its
/// reference loads the folder whole.
/// </summary>
internal static class ExactnessProbe
{
    public static readonly AdamWOptions Adam = new() { LearningRate = 0.01, WeightDecay = 0.1 };
    private const int Seed = 7;

    /// <summary>Sharded training on <paramref name="comm"/>; every rank returns the full parameters after
    /// <paramref name="steps"/> steps.</summary>
    /// <param name="comm">This rank's communicator.</param>
    /// <param name="code">Strategy code.</param>
    /// <param name="groupSize">m.</param>
    /// <param name="accumulation">A.</param>
    /// <param name="steps">Optimizer steps.</param>
    /// <param name="algorithm">Collective algorithm.</param>
    /// <param name="layerwise">Layer-wise execution on the small GPT instead of whole-model on the MLP.</param>
    /// <param name="failFirstStep">First run a step whose micro-batches throw after the forward (every rank alike), and
    /// check it throws.</param>
    /// <param name="recompute">Layer-wise with activations recomputed in backward.</param>
    /// <param name="prefetch">Layer-wise with the next block's gather queued ahead.</param>
    /// <param name="twice">Layer-wise micro-batches that run the model twice (two halves of the batch, losses
    /// averaged).</param>
    /// <param name="folder">A Hugging Face folder to train instead (whole-model, or layer-wise with
    /// <paramref name="layerwise"/>).</param>
    /// <param name="adam">AdamW's settings (default <see cref="Adam"/>).</param>
    public static float[] Train(Communicator comm, string code, int groupSize, int accumulation, int steps,
        CollectiveAlgorithm algorithm = CollectiveAlgorithm.Ring, bool layerwise = false,
        bool failFirstStep = false, bool recompute = false, bool prefetch = true, bool twice = false,
            string? folder = null, AdamWOptions? adam = null)
    {
        comm.Algorithm = algorithm;
        using var hf = folder is null ? null : HfModel.Open(folder);
        using var model = hf is null ? NewModel(layerwise) : Decoder.Placeholder((DecoderConfig)hf.Config);
        var plan = new ShardingPlan(ShardingStrategy.Parse(code), groupSize, accumulation, Layerwise: layerwise,
            Recompute: recompute, Prefetch: !layerwise || prefetch);
        using var trainer = ShardedTrainer.Create(model, plan, comm, adam ?? Adam,
            hf is null ? null : new FolderParameterSource(hf));
        var vocabulary = hf?.Config.VocabularySize;
        if (failFirstStep)
        {
            var failing = Enumerable.Range(0, accumulation).Select(a => (Func<nn.Module, Tensor>)(m =>
            {
                _ = MicroBatch(0, a * comm.Size + comm.Rank, layerwise, vocabulary: vocabulary)(m);
                throw new InvalidOperationException("a bad micro-batch");
            })).ToList();
            try { trainer.Step(failing); throw new InvalidOperationException("the failing step did not throw"); }
            catch (InvalidOperationException e) when (e.Message == "a bad micro-batch") { }
        }
        for (var step = 0; step < steps; step++)
            trainer.Step([.. Enumerable.Range(0, accumulation).Select(a => MicroBatch(step, a * comm.Size + comm.Rank,
                layerwise, twice, vocabulary))]);
        return trainer.GatherParameters();
    }

    /// <summary>Plain TorchSharp on one model: every micro-batch of the global batch, loss averaged over n·A
    /// micro-batches; with <see cref="AdamWOptions.MaxGradNorm"/>, <c>torch.nn.utils.clip_grad_norm_</c> before each
    /// step.</summary>
    public static float[] Reference(int ranks, int accumulation, int steps, bool layerwise = false, bool twice = false,
        string? folder = null, AdamWOptions? adam = null)
    {
        var o = adam ?? Adam;
        using var hf = folder is null ? null : HfModel.Open(folder);
        using var model = hf is null ? NewModel(layerwise) : hf.Load();
        var vocabulary = hf?.Config.VocabularySize;
        var optimizer = optim.AdamW(model.parameters(), lr: o.LearningRate, beta1: o.Beta1, beta2: o.Beta2,
            eps: o.Epsilon, weight_decay: o.WeightDecay);
        for (var step = 0; step < steps; step++)
        {
            optimizer.zero_grad();
            using var microBatches = (ranks * accumulation).ToScalar();               // held for the calls (TK0001)
            for (var micro = 0; micro < ranks * accumulation; micro++)
            {
                using var scope = NewDisposeScope();
                (MicroBatch(step, micro, layerwise, twice, vocabulary)(model) / microBatches).backward();
            }
            if (o.MaxGradNorm > 0) nn.utils.clip_grad_norm_(model.parameters(), o.MaxGradNorm);
            optimizer.step();
        }
        // The scope holds the detached temporaries: unheld, the GC's finaliser could free one while libtorch reads it.
        using var values = NewDisposeScope();
        return [.. model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray())];
    }

    /// <summary>‖a − b‖ / ‖b‖.</summary>
    public static double RelativeError(float[] a, float[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Sum()) / Math.Sqrt(b.Sum(v => (double)v * v));

    private static readonly GptConfig SmallGpt = new(VocabularySize: 13, ContextLength: 8, Layers: 3, Heads: 2,
        Embedding: 6);

    /// <summary>
    /// The model with weights drawn from its own generator, not the global one: tests run in parallel, and another test
    /// seeding or drawing from the global generator between a seed and a draw here would give every rank (and the
    /// reference) other initial weights.
    /// </summary>
    private static nn.Module NewModel(bool layerwise)
    {
        nn.Module model = layerwise
            ? new Gpt(SmallGpt)                                                       // 1,668 parameters
            : nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3));             // 66 parameters
        using var _ = no_grad();
        using var generator = new Generator(Seed);
        using var scale = 0.6.ToScalar();                                             // held for the calls (TK0001)
        using var shift = 0.3.ToScalar();
        foreach (var p in model.parameters())
        {
            using var temporaries = NewDisposeScope();                                // held for the calls
            p.copy_(rand(p.shape, generator: generator).mul_(scale).sub_(shift));
        }
        return model;
    }

    private static Func<nn.Module, Tensor> MicroBatch(int step, int index, bool layerwise, bool twice = false,
        int? vocabulary = null) => model =>
    {
        using var generator = new Generator((ulong)(1000 * step + index + 1));
        if (vocabulary is { } v)
        {
            var tokens = randint(0, v, [4, 8], generator: generator);                 // [B, T]
            var targets = randint(0, v, [4, 8], generator: generator);
            return ((CausalLanguageModel)model).Loss(tokens, targets);
        }
        if (layerwise)
        {
            var tokens = randint(0, SmallGpt.VocabularySize, [4, SmallGpt.ContextLength], generator: generator);
            var targets = randint(0, SmallGpt.VocabularySize, [4, SmallGpt.ContextLength], generator: generator);
            var gpt = (Gpt)model;
            if (!twice) return gpt.Loss(tokens, targets);
            using var two = 2.ToScalar();                                             // held for the call (TK0001)
            return (gpt.Loss(tokens[..2], targets[..2]) + gpt.Loss(tokens[2..], targets[2..])) / two;
        }
        var x = randn([6, 5], generator: generator);
        var y = randn([6, 3], generator: generator);
        return nn.functional.mse_loss(((nn.Module<Tensor, Tensor>)model).call(x), y);
    };
}
