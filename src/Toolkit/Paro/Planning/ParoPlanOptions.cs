using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>
/// Options of <c>paro plan</c>: a model (a LLaMA preset or explicit counts), a cluster (8 GPUs per node on NVLink with
/// a given network, overridable), and the run. Bandwidths are per rank in GB/s.
/// </summary>
public sealed record ParoPlanOptions
{
    /// <summary>llama-7b, llama-13b, llama-65b, or a Hugging Face folder (its config.json alone is read); ignored when
    /// <see cref="Parameters"/> is set. Default llama-7b.</summary>
    [Option("llama-7b, llama-13b, llama-65b, or a Hugging Face folder or checkpoint (only its config.json is read: " +
        "no weights needed) (ignored when --parameters is given).")]
    public string Model { get; init; } = "llama-7b";
    /// <summary>Explicit Ψ (overrides <see cref="Model"/>).</summary>
    [Option("Explicit parameter count (overrides --model), with --layers and --hidden.")]
    public double? Parameters { get; init; }
    /// <summary>Layers for an explicit model. Default 32.</summary>
    [Option("Layers of an explicit model.")]
    public int Layers { get; init; } = 32;
    /// <summary>Hidden size for an explicit model. Default 4096.</summary>
    [Option("Hidden size of an explicit model.")]
    public int Hidden { get; init; } = 4096;
    /// <summary>Ψ'/Ψ: 1 for full training, 1/16 partial, 0.003 PEFT. Default 1.</summary>
    [Option("Trainable share of parameters (1 full, 0.0625 partial, 0.003 PEFT).")]
    public double TrainableFraction { get; init; } = 1;
    /// <summary>n. Default 64.</summary>
    [Option("Number of GPUs (n).")]
    public int Gpus { get; init; } = 64;
    /// <summary>m. Default 8.</summary>
    [Option("GPUs per node = group size (m).")]
    public int GpusPerNode { get; init; } = 8;
    /// <summary>A. Default 4.</summary>
    [Option("Micro-steps per optimizer step (A).")]
    public int Accumulation { get; init; } = 4;
    /// <summary>Sequences per micro-step per GPU. Default 1.</summary>
    [Option("Sequences per micro-step per GPU.")]
    public int MicroBatch { get; init; } = 1;
    /// <summary>Tokens per sequence. Default 2048.</summary>
    [Option("Tokens per sequence.")]
    public int SequenceLength { get; init; } = 2048;
    /// <summary>Device memory in GiB. Default 80.</summary>
    [Option("Device memory in GiB.")]
    public double DeviceMemory { get; init; } = 80;
    /// <summary>Network per node in Gb/s (sets the inter-group bandwidth to network/8 bytes shared by the node's GPUs).
    /// Default 200.</summary>
    [Option("Network per node in Gb/s, shared by its GPUs (sets the inter-group bandwidth).")]
    public double Network { get; init; } = 200;
    /// <summary>Intra-group bandwidth per rank in GB/s (default 150, NVLink).</summary>
    [Option("Intra-node bandwidth per GPU in GB/s (none: 150, NVLink).")]
    public double? IntraBandwidth { get; init; }
    /// <summary>Inter-group bandwidth per rank in GB/s (default from <see cref="Network"/>).</summary>
    [Option("Inter-node bandwidth per GPU in GB/s (none: from --network).")]
    public double? InterBandwidth { get; init; }
    /// <summary>Sustained TFLOP/s per GPU (default 156: A100 bf16 at 50%).</summary>
    [Option("Sustained TFLOP/s per GPU (none: 156, A100 bf16 at 50%).")]
    public double? Tflops { get; init; }
    /// <summary>bf16 (the paper's accounting) or fp32. Default bf16.</summary>
    [Option("bf16 (the paper's accounting) or fp32.")]
    public ParoPrecision Precision { get; init; } = ParoPrecision.Bf16;
    /// <summary>Parameter all-gathers per micro-step: 1 keeps them through backward (this engine), 2 re-gathers for
    /// backward (ZeRO-3). Default 2.</summary>
    [Option("Parameter all-gathers per micro-step: 2 = ZeRO-3 re-gathers for backward, 1 = this engine keeps them.")]
    public int Gathers { get; init; } = 2;

    /// <summary>Plan the engine's layer-wise execution (<c>paro train --layerwise</c>): each block gathered for its
    /// forward and again for its backward, two blocks in flight; <see cref="Gathers"/> does not apply.</summary>
    [Option("Plan layer-wise execution (paro train --layerwise): each block gathered for its forward and again for " +
        "its backward, the next one prefetched; --gathers does not apply.")]
    public bool Layerwise { get; init; }

    /// <summary>The model spec.</summary>
    public ModelSpec ToModel()
    {
        var model = Parameters is { } psi
            ? (psi > 0 ? new ModelSpec($"{psi:G3} parameters", psi, psi, Layers,
                Hidden) : throw new ArgumentOutOfRangeException(nameof(Parameters), psi, "must be positive"))
            : ModelSpec.Presets.TryGetValue(Model, out var preset) ? preset
            : FromFolder(Model) ?? throw new ArgumentException(
                $"Unknown model '{Model}'. Valid: {string.Join(", ", ModelSpec.Presets.Keys)}, a model folder, " +
                "or give --parameters.", nameof(Model));
        return model.WithTrainableFraction(TrainableFraction);
    }

    /// <summary>The sizes of a Hugging Face folder (or a checkpoint's model description) from its config.json alone, or
    /// null.</summary>
    private static ModelSpec? FromFolder(string folder)
    {
        var description = Path.Combine(folder, Models.ModelSource.DescriptionFolder);
        var config = File.Exists(Path.Combine(folder, Models.HfConfig.FileName)) ? folder
            : File.Exists(Path.Combine(description, Models.HfConfig.FileName)) ? description : null;
        if (config is null) return null;
        var (shape, _) = Models.HfConfig.Read(config);
        return new ModelSpec(Path.GetFileName(Path.GetFullPath(folder)), shape.ParameterCount, shape.ParameterCount,
            shape.Layers, shape.Hidden, shape.RootParameterCount);
    }

    /// <summary>The cluster spec.</summary>
    public ClusterSpec ToCluster()
    {
        var preset = ClusterSpec.NvLinkNodes(Gpus,
            Network > 0 ? Network : throw new ArgumentOutOfRangeException(nameof(Network), Network,
                "must be positive"));
        return (preset with
        {
            GroupSize = GpusPerNode,
            DeviceMemoryBytes = DeviceMemory * 1024 * 1024 * 1024,
            IntraBandwidth = (IntraBandwidth ?? preset.IntraBandwidth / 1e9) * 1e9,
            InterBandwidth = (InterBandwidth ?? preset.InterBandwidth / 1e9) * 1e9,
            ComputeFlops = (Tflops ?? preset.ComputeFlops / 1e12) * 1e12,
        }).Validate();
    }

    /// <summary>The training spec.</summary>
    public TrainingSpec ToTraining()
    {
        if (Accumulation < 1) throw new ArgumentOutOfRangeException(nameof(Accumulation), Accumulation,
            "must be at least 1");
        if (MicroBatch < 1) throw new ArgumentOutOfRangeException(nameof(MicroBatch), MicroBatch, "must be at least 1");
        if (SequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(SequenceLength), SequenceLength,
            "must be at least 1");
        if (Gathers is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(Gathers), Gathers, "must be 1 or 2");
        return new TrainingSpec(Accumulation, MicroBatch, SequenceLength, Precision, Gathers, GatherGranularity.Layer);
    }

    /// <summary>Runs the cost model over the trained strategies.</summary>
    public ParoPlan Plan()
    {
        var (model, cluster, training) = (ToModel(), ToCluster(), ToTraining());
        if (!Layerwise) return CostModel.Plan(model, cluster, training);
        if (model.RootParameters is null)
            throw new ArgumentException("needs the size of the model's embeddings, which --parameters does not give: " +
                "use a preset or a model folder", nameof(Layerwise));
        var plan = CostModel.Plan(model, cluster, training,
            estimate: s => LayerwiseCostModel.Estimate(s, model, cluster, training));
        return plan with
        {
            Reasons = [.. plan.Reasons, "Layer-wise execution: each block is gathered for its forward and again for " +
                "its backward (two blocks in flight), the embeddings once per micro-step."],
        };
    }
}
