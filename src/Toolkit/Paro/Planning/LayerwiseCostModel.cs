namespace Toolkit.Paro;

/// <summary>
/// The cost model of the engine's layer-wise execution (<see cref="ShardingPlan.Layerwise"/>, FSDP's schedule): the
/// flat buffer is split into units, the root (embeddings, final norm, an untied output) and one per block, each padded
/// and sharded on its own.
/// </summary>
/// <remarks>
/// <para>Traffic: the root is gathered once per micro-step and each block twice (for its forward, and again for its
/// backward), so the bytes are the whole model's with one gather plus one more gather of the blocks; when gradients
/// are sharded the root's gradient is reduced twice per micro-step (the head's part when the blocks' backward starts,
/// the embeddings' at the end) instead of once. Time adds those collectives' alpha-beta costs (no overlap is
/// assumed, as for the whole model); compute and the optimizer are the whole model's.</para>
/// <para>Memory: the model states are the whole model's. The peak transient (gathered parameters when p ≠ N, staged
/// gradients when g ≠ N), in <see cref="MemoryEstimate.GatheredParameters"/>, is the largest of (a) the end of forward
/// and the head's backward: the root's parameters and gradient with the blocks' slots (two with prefetch, one
/// without); (b) the last block's backward: the slots, the root's gradient still being reduced, and the block's
/// gradient; (c) the other blocks' backward: the slots and two blocks' gradients (one written, the previous one being
/// reduced).</para>
/// </remarks>
public static class LayerwiseCostModel
{
    /// <summary>Estimates <paramref name="strategy"/> run layer-wise.</summary>
    /// <param name="strategy">The strategy.</param>
    /// <param name="model">The model; its padded unit sizes are <paramref name="root"/> and
    /// <paramref name="block"/>.</param>
    /// <param name="root">Parameters of the root unit (padded to the ranks, as the engine stores it).</param>
    /// <param name="block">Parameters of one block unit (padded).</param>
    /// <param name="cluster">The cluster.</param>
    /// <param name="training">The run (its gathers per micro-step are the schedule's own and not used).</param>
    /// <param name="prefetch">Whether the next block is gathered while one computes (two slots; one without).</param>
    public static StrategyEstimate Estimate(ShardingStrategy strategy, ModelSpec model, double root, double block,
        ClusterSpec cluster, TrainingSpec training, bool prefetch = true)
    {
        var blocks = model.Layers * block;
        var trainable = model.TrainableParameters / model.TotalParameters;
        StrategyEstimate Part(double parameters, int gathers, int accumulation) => CostModel.Estimate(strategy,
            model with { TotalParameters = parameters, TrainableParameters = trainable * parameters }, cluster,
            training with
            {
                Accumulation = accumulation, ParameterGathersPerMicroStep = gathers,
                Gathering = GatherGranularity.Model,
            });
        var a = training.Accumulation;
        var whole = Part(root + blocks, 1, a);
        var (blocksTwice, blocksOnce) = (Part(blocks, 2, a), Part(blocks, 1, a));
        var (rootTwice, rootOnce) = (Part(root, 0, 2 * a), Part(root, 0, a));
        var intra = whole.IntraBytesPerStep + blocksTwice.IntraBytesPerStep - blocksOnce.IntraBytesPerStep
            + rootTwice.IntraBytesPerStep - rootOnce.IntraBytesPerStep;
        var inter = whole.InterBytesPerStep + blocksTwice.InterBytesPerStep - blocksOnce.InterBytesPerStep
            + rootTwice.InterBytesPerStep - rootOnce.InterBytesPerStep;
        var communication = whole.CommunicationSeconds + blocksTwice.CommunicationSeconds
            - blocksOnce.CommunicationSeconds + rootTwice.CommunicationSeconds - rootOnce.CommunicationSeconds;

        var bytes = training.Precision == ParoPrecision.Bf16 ? 2.0 : 4.0;
        var gathered = strategy.Parameters == ShardLevel.None ? 0 : 1;      // p = N: used where they are
        var staged = strategy.Gradients == ShardLevel.None ? 0 : 1;         // g = N: accumulated in place
        var trainableBytes = (double)staged * trainable;
        var slots = prefetch ? 2 : 1;
        var peak = bytes * new[]
        {
            gathered * (root + slots * block) + trainableBytes * root,
            gathered * slots * block + trainableBytes * (root + block),
            gathered * slots * block + trainableBytes * 2 * block,
        }.Max();

        var memory = whole.Memory with { GatheredParameters = peak };
        var seconds = whole.ComputeSeconds + communication + whole.OptimizerSeconds;
        var tokens = (double)training.MicroBatch * training.SequenceLength * a * cluster.Ranks;
        var (fits, reason) = CostModel.Fit(memory, cluster);
        return new StrategyEstimate(strategy, memory, intra, inter, whole.ComputeSeconds, communication,
            whole.OptimizerSeconds, seconds, tokens / seconds, fits, reason);
    }

    /// <summary>Estimates <paramref name="strategy"/> layer-wise for a model whose sizes are not padded yet: each unit
    /// is padded to a multiple of the ranks, as the engine pads it.</summary>
    /// <exception cref="ArgumentException">The model does not say how large its root is.</exception>
    public static StrategyEstimate Estimate(ShardingStrategy strategy, ModelSpec model, ClusterSpec cluster,
        TrainingSpec training, bool prefetch = true)
    {
        var root = model.RootParameters ?? throw new ArgumentException(
            "layer-wise planning needs the size of the model's embeddings: use a preset or a model folder",
            nameof(model));
        double Padded(double parameters) => Math.Ceiling(parameters / cluster.Ranks) * cluster.Ranks;
        return Estimate(strategy, model, Padded(root), Padded((model.TotalParameters - root) / model.Layers),
            cluster, training, prefetch);
    }
}
