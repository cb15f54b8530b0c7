namespace Toolkit.Paro;

/// <summary>Numeric precision of training.</summary>
public enum ParoPrecision
{
    /// <summary>fp32 parameters, gradients and Adam moments (4 + 4 + 8 bytes per element).</summary>
    Fp32,
    /// <summary>Mixed precision: bf16 parameters and gradients, fp32 master weights and Adam moments (2 + 2 + 12 bytes
    /// per element).</summary>
    Bf16,
}

/// <summary>How a model is sharded and trained: the strategy, the group size m, gradient accumulation and
/// precision.</summary>
/// <param name="Strategy">The PaRO strategy.</param>
/// <param name="GroupSize">Ranks per group (m); must divide the number of ranks.</param>
/// <param name="Accumulation">Micro-steps per optimizer step (A).</param>
/// <param name="Precision">fp32 or bf16 mixed precision.</param>
/// <param name="Layerwise"> Layer-wise execution (what FSDP does): each block of an <see cref="Models.ILayeredModule"/>
/// is its own flat buffer, gathered just before its forward (the next block's gather runs while a block computes),
/// gathered again for its backward, and its gradient reduced while the previous block's backward computes. False: the
/// whole model is one buffer, gathered once per micro-step and kept through backward. </param>
/// <param name="Recompute"> With <paramref name="Layerwise"/>: drop each block's activations after its forward and
/// recompute them in its backward (activation checkpointing): less activation memory for one more forward of every
/// block. </param>
/// <param name="Prefetch"> With <paramref name="Layerwise"/>: gather the next block while one computes (two blocks'
/// parameters in flight). False: each block is gathered only when it runs, into one buffer (one block's parameters in
/// flight, no overlap). </param>
public sealed record ShardingPlan(ShardingStrategy Strategy, int GroupSize, int Accumulation = 1,
    ParoPrecision Precision = ParoPrecision.Fp32, bool Layerwise = false,
    bool Recompute = false, bool Prefetch = true)
{
    /// <summary>The dtype parameters and gradients are stored and computed in (fp32, or bf16).</summary>
    public TorchSharp.torch.ScalarType ComputeType => Precision == ParoPrecision.Fp32
        ? TorchSharp.torch.ScalarType.Float32 : TorchSharp.torch.ScalarType.BFloat16;

    /// <summary>Bytes per element of parameters and gradients as stored (4 in fp32, 2 in bf16).</summary>
    public int ComputeBytes => Precision == ParoPrecision.Fp32 ? 4 : 2;

    /// <summary>Bytes per element of optimizer state: Adam moments, plus an fp32 master copy in mixed precision (8 or
    /// 12).</summary>
    public int OptimizerBytes => Precision == ParoPrecision.Fp32 ? 8 : 12;

    /// <summary>Throws if the plan cannot run on <paramref name="ranks"/> ranks.</summary>
    public ShardingPlan Validate(int ranks)
    {
        if (!Strategy.IsEffective) throw ShardingPlanException.Ineffective(Strategy);
        if (GroupSize < 1 || ranks % GroupSize != 0)
            throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize,
                $"must divide the number of ranks ({ranks})");
        if (Accumulation < 1) throw new ArgumentOutOfRangeException(nameof(Accumulation), Accumulation,
            "must be at least 1");
        if (!Prefetch
            && !Layerwise) throw new ArgumentException(
                "turning prefetch off is part of layer-wise execution: add --layerwise (Layerwise in C#).",
                    nameof(Prefetch));
        if (Recompute
            && !Layerwise) throw new ArgumentException(
                "recomputing activations is part of layer-wise execution: add --layerwise (Layerwise in C#).",
                    nameof(Recompute));
        return this;
    }
}
