using Toolkit.Checkpoints;
using System.Text.Json.Serialization;
using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>
/// Options of <c>paro train</c>: a model (a GPT preset, a checkpoint or a Hugging Face folder) trained under one PaRO
/// strategy, composed of small records that every front end derives its options from.
/// </summary>
public sealed record ParoTrainOptions : IJobOptions
{
    /// <summary>Where the ranks run. Default 4 in-process ranks in groups of 2.</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new();

    /// <summary>Strategy, accumulation, precision and collectives.</summary>
    [OptionGroup] public ShardingOptions Sharding { get; init; } = new();

    /// <summary>The model.</summary>
    [OptionGroup] public ModelOptions Model { get; init; } = new();

    /// <summary>AdamW. Defaults for this job: learning rate 3e-3, β2 0.95, weight decay 0.1 (nanoGPT's small-model
    /// recipe).</summary>
    [OptionGroup] public AdamWOptions Optimizer { get; init; } = new() { LearningRate = 3e-3, Beta2 = 0.95,
        WeightDecay = 0.1 };

    /// <summary>Training text and micro-batch.</summary>
    [OptionGroup] public TextDataOptions Data { get; init; } = new();

    /// <summary>Saving and resuming sharded checkpoints.</summary>
    [OptionGroup] public CheckpointOptions Checkpoint { get; init; } = new();

    /// <summary>Optimizer steps. Default 20.</summary>
    [Option("Optimizer steps.")] public int Steps { get; init; } = 20;

    /// <summary>Seed of weights and data. Default 1.</summary>
    [Option("Seed of weights and data.")] public int Seed { get; init; } = 1;

    /// <summary>The sharding plan these options describe.</summary>
    [JsonIgnore] public ShardingPlan Plan => new(ShardingStrategy.Parse(Sharding.Strategy), Launch.GroupSize,
        Sharding.Accumulation, Sharding.Precision, Sharding.Layerwise, Sharding.Recompute, !Sharding.NoPrefetch);

    /// <summary>Tokens one optimizer step consumes over all ranks, for sequences of <paramref name="length"/>
    /// tokens.</summary>
    public long TokensPerStep(int length) => (long)Launch.Ranks * Sharding.Accumulation * Data.MicroBatch * length;

    /// <summary>Throws <see cref="ArgumentException"/> (or <see cref="ShardingPlanException"/>) naming the first
    /// invalid option.</summary>
    public ParoTrainOptions Validate()
    {
        Launch.Validate();
        // The plan checks this too, but names its own parameter (Prefetch), which is not an option's.
        if (Sharding.NoPrefetch
            && !Sharding.Layerwise) throw new ArgumentException("is part of layer-wise execution: add --layerwise.",
                nameof(ShardingOptions.NoPrefetch));
        Plan.Validate(Launch.Ranks);
        var model = Model.Resolve();
        Optimizer.Validate();
        Data.Validate();
        if (Data.SequenceLength > model.Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(Data.SequenceLength), Data.SequenceLength,
                $"exceeds the model's context ({model.Config.ContextLength})");
        Checkpoint.Validate();
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "must be at least 1");
        return this;
    }

    void ICheckedOptions.Check() => Validate();
}

/// <summary>How the model is sharded and synchronised.</summary>
public sealed record ShardingOptions
{
    /// <summary>Strategy code (<c>NIG</c>) or alias (<c>zero3</c>). Default NIG.</summary>
    [Option("PaRO strategy: three letters N/I/G for parameters, gradients, optimizer states (NIG), or ddp, zero1, " +
        "zero2, zero3, mics, hsdp.")]
    public string Strategy { get; init; } = "NIG";

    /// <summary>Micro-steps per optimizer step (A). Default 1.</summary>
    [Option("Micro-steps per optimizer step (A): PaRO's inter-group traffic is paid once per step, not once per " +
        "micro-step.")]
    public int Accumulation { get; init; } = 1;

    /// <summary>fp32, or bf16 mixed precision. Default fp32.</summary>
    [Option("fp32, or bf16 mixed precision (bf16 parameters and gradients, fp32 master weights and moments).")]
    public ParoPrecision Precision { get; init; } = ParoPrecision.Fp32;

    /// <summary>Layer-wise execution (FSDP's schedule) instead of gathering the whole model. Default off.</summary>
    [Option("Layer-wise execution (what FSDP does): gather each transformer block just before its forward " +
        "(prefetching the next while one computes) and again for its backward, and reduce its gradient while the " +
            "previous block's backward computes; the peak holds two blocks' parameters instead of the whole model's.")]
    public bool Layerwise { get; init; }

    /// <summary>With <see cref="Layerwise"/>: recompute each block's activations in backward. Default off.</summary>
    [Option("With --layerwise: drop each block's activations after its forward and recompute them in backward " +
        "(activation checkpointing): less memory, one more forward per block.")]
    public bool Recompute { get; init; }

    /// <summary>With <see cref="Layerwise"/>: no prefetch (one block's parameters in flight). Default off.</summary>
    [Option("With --layerwise: gather each block only when it runs, into one buffer, instead of prefetching the next " +
        "one while a block computes: one block's parameters in flight instead of two, and no overlap of gathers with " +
            "computation.")]
    public bool NoPrefetch { get; init; }

    /// <summary>Collective implementation. Default ring.</summary>
    [Option("Collective algorithm of global all-reduces: native (MPI's own), ring, hierarchical or ho-ring.")]
    public CollectiveAlgorithm Collectives { get; init; } = CollectiveAlgorithm.Ring;
}

/// <summary>Training text and batch shape.</summary>
public sealed record TextDataOptions
{
    /// <summary>A UTF-8 text file; null for the embedded synthetic stories.</summary>
    [Option("A UTF-8 text file to train on (none: the embedded synthetic stories).", Name = "data")]
    public string? Path { get; init; }

    /// <summary>Sequences per micro-batch per rank. Default 8.</summary>
    [Option("Sequences per micro-batch per rank.")]
    public int MicroBatch { get; init; } = 8;

    /// <summary>Tokens per training sequence; 0 for the model's context, at most 256. Default 0.</summary>
    [Option("Tokens per training sequence (0: the model's context, at most 256: a GPT preset's whole context).")]
    public int SequenceLength { get; init; }

    /// <summary>The sequence length for a model of <paramref name="config"/>.</summary>
    public int LengthFor(IModelConfig config)
        => SequenceLength > 0 ? SequenceLength : Math.Min(config.ContextLength, 256);

    /// <summary>Throws naming the first invalid setting.</summary>
    public TextDataOptions Validate()
    {
        if (MicroBatch < 1) throw new ArgumentOutOfRangeException(nameof(MicroBatch), MicroBatch, "must be at least 1");
        if (SequenceLength < 0) throw new ArgumentOutOfRangeException(nameof(SequenceLength), SequenceLength,
            "must not be negative (0: the model's context)");
        if (Path is not null && !File.Exists(Path)) throw new ArgumentOutOfRangeException(nameof(Path), Path,
            "no such file");
        return this;
    }
}

/// <summary>Sharded checkpoints.</summary>
public sealed record CheckpointOptions
{
    /// <summary>Save every this many steps into the run folder's <c>checkpoints/step-K/</c>; 0 never.</summary>
    [Option("Save a sharded checkpoint every K steps into the run folder's checkpoints/step-K (0: never).",
        Name = "checkpoint-every")]
    public int Every { get; init; }

    /// <summary>
    /// A checkpoint folder to resume from, written under any strategy, rank count, group size or precision (re-sliced
    /// on load). To continue the same trajectory keep the global batch: ranks x accumulation x micro-batch (data is
    /// indexed by global micro-batch).
    /// </summary>
    [Option("Resume from a checkpoint folder (runs/<id>/checkpoints/step-K) written under any strategy, rank count, " +
        "group size or precision (it is re-sliced), or a run folder (its latest intact checkpoint); steps continue " +
        "from its step.", Name = "resume")]
    public string? ResumeFrom { get; init; }

    /// <summary>How many of the newest checkpoints a run keeps; 0 keeps all.</summary>
    [Option("Keep only the newest K checkpoints of the run (0: all).", Name = "keep-checkpoints")]
    public int Keep { get; init; }

    /// <summary>Restarts of every rank from the latest checkpoint when a rank dies or the job fails; 0 none.</summary>
    [Option("When a rank dies or the job fails, start every rank again from the run's latest intact checkpoint, up " +
        "to N times (torchrun's --max-restarts; recorded in the run folder's restarts.jsonl).")]
    public int MaxRestarts { get; init; }

    /// <summary>A folder to write the trained model into as a Hugging Face folder at the end (from the last step's
    /// checkpoint), or null.</summary>
    [Option("At the end, write the trained model as a Hugging Face folder here (from a checkpoint of the last step; " +
        "none: no export).")]
    public string? Export { get; init; }

    /// <summary>Throws naming the first invalid setting.</summary>
    public CheckpointOptions Validate()
    {
        if (Every < 0) throw new ArgumentOutOfRangeException(nameof(Every), Every, "must not be negative");
        if (Export is not null && File.Exists(Export)) throw new ArgumentOutOfRangeException(nameof(Export), Export,
            "is a file; give a folder to write the model into");
        if (Keep < 0) throw new ArgumentOutOfRangeException(nameof(Keep), Keep, "must not be negative");
        if (MaxRestarts < 0) throw new ArgumentOutOfRangeException(nameof(MaxRestarts), MaxRestarts,
            "must not be negative");
        if (ResumeFrom is not null) _ = CheckpointFolders.Resolve(ResumeFrom);
        return this;
    }
}
