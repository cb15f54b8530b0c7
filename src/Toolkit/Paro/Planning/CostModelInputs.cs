namespace Toolkit.Paro;

/// <summary>The model being trained, for the cost model.</summary>
/// <param name="Name">A label.</param>
/// <param name="TotalParameters">Ψ: every parameter.</param>
/// <param name="TrainableParameters">Ψ': parameters that receive gradients (Ψ for full training; Ψ/16 for the
/// paper's partial training; about 0.003Ψ for PEFT).</param>
/// <param name="Layers">Transformer layers (activation memory, per-layer parameter gathering).</param>
/// <param name="Hidden">Hidden size (activation memory).</param>
/// <param name="RootParameters">Parameters outside the blocks (embeddings, final norm, an untied output), for
/// layer-wise execution; null when unknown.</param>
public sealed record ModelSpec(string Name, double TotalParameters, double TrainableParameters, int Layers, int Hidden,
    double? RootParameters = null)
{
    /// <summary>LLaMA-7B (6.74 B parameters, 32 layers, hidden 4096, vocabulary 32000, untied output).</summary>
    public static ModelSpec Llama7B { get; } = new("llama-7b", 6.74e9, 6.74e9, 32, 4096, LlamaRoot(4096));
    /// <summary>LLaMA-13B (13.0 B, 40 layers, hidden 5120).</summary>
    public static ModelSpec Llama13B { get; } = new("llama-13b", 13.0e9, 13.0e9, 40, 5120, LlamaRoot(5120));
    /// <summary>LLaMA-65B (65.2 B, 80 layers, hidden 8192).</summary>
    public static ModelSpec Llama65B { get; } = new("llama-65b", 65.2e9, 65.2e9, 80, 8192, LlamaRoot(8192));

    // LLaMA's embedding and output (vocabulary 32000, untied) and its final norm.
    private static double LlamaRoot(int hidden) => 2.0 * 32000 * hidden + hidden;

    /// <summary>The presets by name.</summary>
    public static IReadOnlyDictionary<string, ModelSpec> Presets { get; } = new Dictionary<string,
        ModelSpec>(StringComparer.OrdinalIgnoreCase)
    {
        [Llama7B.Name] = Llama7B, [Llama13B.Name] = Llama13B, [Llama65B.Name] = Llama65B,
    };

    /// <summary>The same model with a trainable fraction Ψ'/Ψ.</summary>
    public ModelSpec WithTrainableFraction(double fraction) => fraction is > 0 and <= 1
        ? this with { TrainableParameters = TotalParameters * fraction }
        : throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "must be in (0, 1]");
}

/// <summary>The machines, for the cost model. Bandwidths are per rank, in bytes per second.</summary>
/// <param name="Name">A label.</param>
/// <param name="Ranks">n: GPUs (or processes) in the job.</param>
/// <param name="GroupSize">m: ranks per group, normally GPUs per node.</param>
/// <param name="DeviceMemoryBytes">Memory per device.</param>
/// <param name="IntraBandwidth">B': bytes/s one rank can send to a rank of its own group (NVLink, shared
/// memory).</param>
/// <param name="InterBandwidth">B: bytes/s one rank can send to other groups while every rank of its group does the
/// same (the node's network divided by m when they share it).</param>
/// <param name="IntraLatency">α': seconds per intra-group message.</param>
/// <param name="InterLatency">α: seconds per inter-group message.</param>
/// <param name="ComputeFlops">Sustained training FLOP/s per rank (peak times utilisation).</param>
/// <param name="MemoryBandwidth">Device memory bytes/s (optimizer step time).</param>
public sealed record ClusterSpec(string Name, int Ranks, int GroupSize, double DeviceMemoryBytes,
    double IntraBandwidth, double InterBandwidth,
    double IntraLatency, double InterLatency, double ComputeFlops, double MemoryBandwidth)
{
    private const double GiB = 1024.0 * 1024 * 1024;

    /// <summary>
    /// 8 A100-80GB per node on NVLink (150 GB/s per GPU effective), nodes joined by a network of
    /// <paramref name="networkGbps"/> Gb/s per node shared by its 8 GPUs; 312 TFLOP/s bf16 at 50% utilisation.
    /// </summary>
    public static ClusterSpec NvLinkNodes(int gpus, double networkGbps) => new(
        $"{gpus}x A100-80GB, 8/node NVLink, {networkGbps:G} Gb/s per node", gpus, 8, 80 * GiB,
        IntraBandwidth: 150e9, InterBandwidth: networkGbps * 1e9 / 8 / 8, IntraLatency: 5e-6, InterLatency: 20e-6,
        ComputeFlops: 0.5 * 312e12, MemoryBandwidth: 2.0e12);

    /// <summary>Cluster presets: <c>nvlink-100g</c>, <c>nvlink-200g</c>, <c>nvlink-400g</c>, <c>nvlink-800g</c> (with a
    /// GPU count).</summary>
    public static ClusterSpec Preset(string name, int gpus) => name.ToLowerInvariant() switch
    {
        "nvlink-100g" => NvLinkNodes(gpus, 100),
        "nvlink-200g" => NvLinkNodes(gpus, 200),
        "nvlink-400g" => NvLinkNodes(gpus, 400),
        "nvlink-800g" => NvLinkNodes(gpus, 800),
        _ => throw new ArgumentException(
            $"Unknown cluster preset '{name}'. Valid: nvlink-100g, nvlink-200g, nvlink-400g, nvlink-800g.",
                nameof(name)),
    };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid value.</summary>
    public ClusterSpec Validate()
    {
        if (Ranks < 1) throw new ArgumentOutOfRangeException(nameof(Ranks), Ranks, "must be at least 1");
        if (GroupSize < 1 || Ranks % GroupSize != 0) throw new ArgumentOutOfRangeException(nameof(GroupSize),
            GroupSize, $"must divide the number of ranks ({Ranks})");
        foreach (var (name, value) in new[] { (nameof(DeviceMemoryBytes), DeviceMemoryBytes), (nameof(IntraBandwidth),
            IntraBandwidth), (nameof(InterBandwidth), InterBandwidth), (nameof(ComputeFlops), ComputeFlops),
                (nameof(MemoryBandwidth), MemoryBandwidth) })
            if (!(value > 0)) throw new ArgumentOutOfRangeException(name, value, "must be positive");
        if (IntraLatency < 0 || InterLatency < 0) throw new ArgumentOutOfRangeException(nameof(InterLatency),
            "latencies must not be negative");
        return this;
    }
}

/// <summary>How parameters are gathered when sharded.</summary>
public enum GatherGranularity
{
    /// <summary>Layer by layer with one layer prefetched (FSDP, DeepSpeed ZeRO-3): two layers' parameters are
    /// transient.</summary>
    Layer,
    /// <summary>The whole model at once (this toolkit's engine): all parameters are transient.</summary>
    Model,
}

/// <summary>The training run, for the cost model.</summary>
/// <param name="Accumulation">A: micro-steps per optimizer step.</param>
/// <param name="MicroBatch">Sequences per micro-step per rank.</param>
/// <param name="SequenceLength">Tokens per sequence.</param>
/// <param name="Precision">fp32, or bf16 mixed precision (the paper's accounting).</param>
/// <param name="ParameterGathersPerMicroStep">1 when gathered parameters are kept through backward (this engine's
/// whole-model execution; layer-wise execution gathers its blocks twice and its root once); 2 when they are released
/// after forward and gathered again for backward (ZeRO-3; the paper's 3A·u for GGG).</param>
/// <param name="Gathering">Transient memory of gathered parameters.</param>
public sealed record TrainingSpec(int Accumulation, int MicroBatch, int SequenceLength,
    ParoPrecision Precision = ParoPrecision.Bf16,
    int ParameterGathersPerMicroStep = 1, GatherGranularity Gathering = GatherGranularity.Layer);
