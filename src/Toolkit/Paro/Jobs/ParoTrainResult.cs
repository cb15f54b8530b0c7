using System.Globalization;
using System.Text.Json.Serialization;
using Toolkit.Reporting;

namespace Toolkit.Paro;

/// <summary>What a PaRO training run measured (serialised as the <c>--json</c> output of <c>toolkit paro
/// train</c>).</summary>
/// <param name="Strategy">Strategy code.</param>
/// <param name="Ranks">n.</param>
/// <param name="GroupSize">m.</param>
/// <param name="Accumulation">A.</param>
/// <param name="Precision">fp32 or bf16.</param>
/// <param name="ParameterCount">Model parameters (Ψ).</param>
/// <param name="Steps">Mean loss over ranks, per step.</param>
/// <param name="Memory">Bytes each rank held, measured from its buffers.</param>
/// <param name="Comm">Bytes sent per rank per global step (the largest over ranks).</param>
/// <param name="Throughput">Median step time and tokens per second.</param>
/// <param name="RunPath">The run folder.</param>
public sealed record ParoTrainResult(string Strategy, int Ranks, int GroupSize, int Accumulation, string Precision,
    long ParameterCount,
    IReadOnlyList<StepLoss> Steps, IReadOnlyList<RankMemory> Memory, CommPerStep Comm, Throughput Throughput,
        string RunPath) : IFacts
{
    /// <inheritdoc/>
    [JsonIgnore] public string Title => $"PaRO {Strategy}: {Path.GetFileName(RunPath)}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts() =>
    [
        ("strategy / ranks / group size / A / precision",
            $"{Strategy} / {Ranks} / {GroupSize} / {Accumulation} / {Precision}"),
        ("parameters", ParameterCount.ToString("N0", CultureInfo.InvariantCulture)),
        ("loss", string.Create(CultureInfo.InvariantCulture, $"{Steps[0].Loss:F4} -> {Steps[^1].Loss:F4}")),
        .. Memory.Select(m => ($"rank {m.Rank} bytes: params / grads / optimizer / peak",
            $"{m.ParamsBytes} / {m.GradsBytes} / {m.OptimizerBytes} / {m.PeakBytes}")),
        ("bytes per rank per step (largest over ranks): intra / inter",
            $"{Comm.IntraBytesPerStep} / {Comm.InterBytesPerStep}"),
        ("median step / tokens per second", string.Create(CultureInfo.InvariantCulture,
            $"{Throughput.StepSeconds * 1000:F1} ms / {Throughput.TokensPerSecond:F0}")),
        ("run folder", RunPath),
    ];
}

/// <summary>Loss of one step.</summary>
/// <param name="Step">Step index (0-based).</param>
/// <param name="Loss">Mean loss over ranks.</param>
public sealed record StepLoss(int Step, double Loss);

/// <summary>Bytes one rank held.</summary>
/// <param name="Rank">The rank.</param>
/// <param name="ParamsBytes">Parameter slice.</param>
/// <param name="GradsBytes">Gradient slice.</param>
/// <param name="OptimizerBytes">Optimizer slice (moments, and master weights in bf16).</param>
/// <param name="PeakBytes">Model states plus the peak transient of a micro-step.</param>
public sealed record RankMemory(int Rank, long ParamsBytes, long GradsBytes, long OptimizerBytes, long PeakBytes);

/// <summary>Traffic per global step.</summary>
/// <param name="IntraBytesPerStep">Bytes sent inside the group.</param>
/// <param name="InterBytesPerStep">Bytes sent to other groups.</param>
public sealed record CommPerStep(long IntraBytesPerStep, long InterBytesPerStep);

/// <summary>Speed.</summary>
/// <param name="StepSeconds">Median seconds per optimizer step (after the first).</param>
/// <param name="TokensPerSecond">Tokens of all ranks per second.</param>
public sealed record Throughput(double StepSeconds, double TokensPerSecond);
