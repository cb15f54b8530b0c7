using System.Text.Json.Serialization;
using Toolkit.Runs;

namespace Toolkit.Paro;

/// <summary>Where the ranks of a job run.</summary>
public enum Launcher
{
    /// <summary>Ranks are threads of this process (the embedded default; no MPI).</summary>
    InProcess,
    /// <summary>Ranks are processes started by <c>mpiexec</c> (MPICH hydra or Slurm's srun via TOOLKIT_MPIEXEC).</summary>
    Mpi,
}

/// <summary>Options of <c>paro train</c>: a small GPT trained under one PaRO strategy. Every default is documented; <see cref="Validate"/> rejects bad values before work starts.</summary>
public sealed record ParoTrainOptions
{
    /// <summary>Strategy code or alias (<c>NIG</c>, <c>zero3</c>). Default <c>NIG</c>.</summary>
    public string Strategy { get; init; } = "NIG";
    /// <summary>Ranks (n). Default 4.</summary>
    public int Ranks { get; init; } = 4;
    /// <summary>Ranks per group (m), dividing n. Default 2.</summary>
    public int GroupSize { get; init; } = 2;
    /// <summary>Micro-steps per optimizer step (A). Default 1.</summary>
    public int Accumulation { get; init; } = 1;
    /// <summary>Optimizer steps. Default 20.</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Seed of weights and data. Default 1.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>GPT preset: tiny, small, medium or base. Default <c>tiny</c>.</summary>
    public string Model { get; init; } = "tiny";
    /// <summary>fp32 or bf16 (mixed). Default fp32.</summary>
    public ParoPrecision Precision { get; init; } = ParoPrecision.Fp32;
    /// <summary>Sequences per micro-batch per rank. Default 8.</summary>
    public int MicroBatch { get; init; } = 8;
    /// <summary>AdamW learning rate. Default 3e-3.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>In-process threads or MPI processes. Default in-process.</summary>
    public Launcher Launcher { get; init; } = Launcher.InProcess;
    /// <summary>Collective implementation: native (MPI's own), ring, hierarchical or ho-ring. Global all-reduces use it directly; the per-level collectives of the PaRO schedule use native or ring. Default ring.</summary>
    public string Collectives { get; init; } = "ring";
    /// <summary>Run the MPI ranks on an emulated cluster of this shape (<c>GxM</c>: G nodes of M ranks; needs root), instead of on this host. Requires the MPI launcher, Ranks = G·M and GroupSize = M. Default none.</summary>
    public string? Emulate { get; init; }
    /// <summary>Emulated link rate (tc spelling). Default 1gbit.</summary>
    public string InterBandwidth { get; init; } = "1gbit";
    /// <summary>Emulated link latency (needs netem in the kernel). Default 0.2ms.</summary>
    public string InterLatency { get; init; } = "0.2ms";
    /// <summary>A UTF-8 text file to train on; null for the embedded synthetic stories.</summary>
    public string? DataPath { get; init; }
    /// <summary>Save a sharded checkpoint every this many steps into the run folder's <c>checkpoints/step-K/</c>; 0 never. Default 0.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>A checkpoint folder to resume from (same strategy, ranks, group size, precision and model); steps continue from its step. Default none.</summary>
    public string? ResumeFrom { get; init; }
    /// <summary>Folder for run folders. Default <see cref="RunDirectory.DefaultRoot"/>.</summary>
    public string RunsDirectory { get; init; } = RunDirectory.DefaultRoot;

    /// <summary>The parsed strategy.</summary>
    [JsonIgnore]
    public ShardingStrategy ParsedStrategy => ShardingStrategy.Parse(Strategy);

    /// <summary>The GPT shape.</summary>
    [JsonIgnore]
    public Models.GptConfig ModelConfig => Models.GptConfig.Preset(Model);

    /// <summary>Tokens one optimizer step consumes over all ranks.</summary>
    [JsonIgnore]
    public long TokensPerStep => (long)Ranks * Accumulation * MicroBatch * ModelConfig.ContextLength;

    /// <summary>Throws <see cref="ArgumentException"/> (or <see cref="ShardingPlanException"/>) naming the first invalid option.</summary>
    public ParoTrainOptions Validate()
    {
        _ = ParsedStrategy;
        _ = ModelConfig;
        new ShardingPlan(ParsedStrategy, GroupSize, Accumulation, Precision).Validate(Ranks > 0 ? Ranks : throw new ArgumentOutOfRangeException(nameof(Ranks), Ranks, "must be at least 1"));
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "must be at least 1");
        if (MicroBatch < 1) throw new ArgumentOutOfRangeException(nameof(MicroBatch), MicroBatch, "must be at least 1");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "must be positive");
        _ = Comm.CollectiveAlgorithms.Parse(Collectives);
        if (Emulate is not null)
        {
            var cluster = Comm.EmulatedCluster.Parse(Emulate, InterBandwidth, InterLatency);
            if (Launcher != Launcher.Mpi || cluster.Nodes * cluster.RanksPerNode != Ranks || cluster.RanksPerNode != GroupSize)
                throw new ArgumentException($"--emulate {Emulate} needs --launcher mpi, --ranks {cluster.Nodes * cluster.RanksPerNode} and --group-size {cluster.RanksPerNode}.");
            _ = Comm.Units.ParseBitRate(InterBandwidth);
            _ = Comm.Units.ParseDuration(InterLatency);
        }
        if (CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "must not be negative");
        if (ResumeFrom is not null) _ = CheckpointManifest.Read(ResumeFrom);
        if (DataPath is not null && !File.Exists(DataPath)) throw new FileNotFoundException($"Training text '{DataPath}' does not exist.", DataPath);
        return this;
    }
}
