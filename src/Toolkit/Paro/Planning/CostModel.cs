using System.Globalization;
namespace Toolkit.Paro;

/// <summary>
/// Predicts, for each PaRO strategy, memory per rank, bytes each rank sends inside and across groups per global step,
/// and step time; drops strategies that do not fit and recommends the fastest.
/// </summary>
/// <remarks>
/// <para>Memory (PaRO §3.1; mixed precision): M = 2Ψ/d(p) + 2Ψ'/d(g) + 12Ψ'/d(os) with d(N) = 1, d(I) = m, d(G) = n
/// (fp32: 4, 4 and 8 bytes), plus activations (full activation checkpointing: 2sbhL for the checkpoints plus 34sbh for
/// the layer being recomputed, Korthikanti et al. 2022) plus the transient gathered parameters.</para>
/// <para>Traffic follows the schedule of <see cref="ShardedTrainer"/> (the authors' schedule): collectives are rings
/// inside a level, and a global collective is hierarchical, so a reduce-scatter or all-gather of S bytes costs
/// (m-1)/m·S intra-group and (g-1)/g·S/m inter-group per rank. With u = (g-1)/g·2Ψ/m this reproduces the paper's
/// inter-group volumes: NNN, NNG, NIG, IIG, NII, III, ING 2u; NGG and IGG (A+1)u; GGG (1 + gathers)·A·u.</para>
/// <para>Time (the paper's guideline): T = A·(t_compute + t_param + t_grad) + t_sync_g + t_sync_p + t_optimizer, each
/// collective an alpha-beta cost (k-1)α + (k-1)/k·S/B on its level's k ranks; no overlap is assumed. Compute is (4Ψ
/// + 2Ψ')·tokens FLOPs (forward 2Ψ, backward 2Ψ for activations and 2Ψ' for weights).</para>
/// </remarks>
public static class CostModel
{
    // bytes per token per hidden unit of one layer's working set (bf16)
    private const double ActivationBytesPerToken = 34;

    /// <summary>Estimates one strategy.</summary>
    public static StrategyEstimate Estimate(ShardingStrategy strategy, ModelSpec model, ClusterSpec cluster,
        TrainingSpec training)
    {
        cluster.Validate();
        var (n, m) = (cluster.Ranks, cluster.GroupSize);
        var bytes = training.Precision == ParoPrecision.Bf16 ? 2.0 : 4.0;
        var optimizerBytes = training.Precision == ParoPrecision.Bf16 ? 12.0 : 8.0;
        double D(ShardLevel level) => ShardingStrategy.Divisor(level, n, m);

        var memory = new MemoryEstimate(
            Parameters: bytes * model.TotalParameters / D(strategy.Parameters),
            Gradients: bytes * model.TrainableParameters / D(strategy.Gradients),
            Optimizer: optimizerBytes * model.TrainableParameters / D(strategy.OptimizerStates),
            Activations: ActivationBytes(model, training),
            GatheredParameters: strategy.Parameters == ShardLevel.None ? 0
                : training.Gathering == GatherGranularity.Model ? bytes * model.TotalParameters
                : 2 * bytes * model.TotalParameters / model.Layers);

        var traffic = Traffic(strategy, model, cluster, training, bytes);
        var tokens = (double)training.MicroBatch * training.SequenceLength;
        var compute = (4 * model.TotalParameters + 2 * model.TrainableParameters) * tokens / cluster.ComputeFlops;
        var optimizer = model.TrainableParameters / D(strategy.OptimizerStates) * (optimizerBytes
            + 2 * bytes) * 2 / cluster.MemoryBandwidth;
        var seconds = training.Accumulation * (compute + traffic.MicroStepSeconds) + traffic.BoundarySeconds
            + optimizer;

        var (fits, reason) = Fit(memory, cluster);
        return new StrategyEstimate(strategy, memory, traffic.IntraBytes, traffic.InterBytes,
            compute * training.Accumulation,
            traffic.MicroStepSeconds * training.Accumulation + traffic.BoundarySeconds, optimizer, seconds,
            n * training.Accumulation * tokens / seconds, fits, reason);
    }

    /// <summary>Estimates every strategy in <paramref name="strategies"/> (default: the trained set) with
    /// <paramref name="estimate"/> (default: <see cref="Estimate"/>) and recommends one.</summary>
    public static ParoPlan Plan(ModelSpec model, ClusterSpec cluster, TrainingSpec training,
        IEnumerable<ShardingStrategy>? strategies = null, Func<ShardingStrategy, StrategyEstimate>? estimate = null)
    {
        estimate ??= s => Estimate(s, model, cluster, training);
        var estimates = (strategies ?? ShardingStrategy.Trained).Select(estimate).ToList();
        var feasible = estimates.Where(e => e.Feasible).OrderBy(e => e.StepSeconds).ToList();
        if (feasible.Count == 0)
        {
            var smallest = estimates.MinBy(e => e.Memory.Total)!;
            return new ParoPlan(model, cluster, training, estimates, null,
                [$"No strategy fits in {Gib(cluster.DeviceMemoryBytes)} per device; the " +
                    $"smallest, {smallest.Strategy.Code}, needs {Gib(smallest.Memory.Total)}. Use more ranks, a " +
                        $"smaller micro-batch, or fewer trainable parameters."]);
        }
        var best = feasible[0];
        var reasons
            = new List<string> { $"{best.Strategy.Code} is the fastest strategy that fits: " +
                $"predicted {best.StepSeconds:F3} s per step, {best.Reason}." };
        if (feasible.Count > 1)
            reasons.Add(
                $"Next best: {feasible[1].Strategy.Code} at {feasible[1].StepSeconds:F3} s " +
                    $"({feasible[1].StepSeconds / best.StepSeconds:F2}x slower).");
        foreach (var code in new[] { "GGG", "NNN" })
            if (estimates.FirstOrDefault(e => e.Strategy.Code == code && e.Strategy != best.Strategy) is { } other)
                reasons.Add(other.Feasible
                    ? $"Against {code} ({other.Strategy.KnownAs}): {other.StepSeconds / best.StepSeconds:F2}x the " +
                        $"step time, {Ratio(other.InterBytesPerStep, best.InterBytesPerStep)} the inter-group bytes."
                    : $"{code} ({other.Strategy.KnownAs}) does not fit: {other.Reason}.");
        return new ParoPlan(model, cluster, training, estimates, best.Strategy, reasons);
    }

    /// <summary>Per-rank bytes and seconds of the collectives of one global step.</summary>
    private static TrafficEstimate Traffic(ShardingStrategy s, ModelSpec model, ClusterSpec c, TrainingSpec t,
        double bytes)
    {
        var levels = new LevelCosts(c);
        var p = bytes * model.TotalParameters;           // all parameters, as stored
        var grads = bytes * model.TrainableParameters;   // gradients and updated parameters
        var micro = new Cost();
        for (var i = 0; i < (s.Parameters == ShardLevel.None ? 0 : t.ParameterGathersPerMicroStep); i++)
            micro += s.Parameters == ShardLevel.Intra ? levels.Intra(p) : levels.Global(p);
        micro += s.Gradients switch
        {
            ShardLevel.Intra => levels.Intra(grads),
            ShardLevel.Global => levels.Global(grads),
            _ => new Cost(),
        };
        var boundary = (s.Gradients, s.OptimizerStates) switch
        {
            // hierarchical all-reduce
            (ShardLevel.None, ShardLevel.None) => levels.Intra(grads) + levels.Inter(grads, 2) + levels.Intra(grads),
            (ShardLevel.None, ShardLevel.Intra) => levels.Intra(grads) + levels.Inter(grads, 2),
            (ShardLevel.None, ShardLevel.Global) => levels.Global(grads),
            (ShardLevel.Intra, ShardLevel.Intra) => levels.Inter(grads, 2),
            (ShardLevel.Intra, ShardLevel.Global) => levels.Inter(grads),
            _ => new Cost(),
        };
        boundary += (s.OptimizerStates, s.Parameters) switch   // rebuild parameters from the optimizer's level
        {
            (ShardLevel.Global, ShardLevel.Intra) => levels.Inter(grads),
            (ShardLevel.Global, ShardLevel.None) => levels.Global(grads),
            (ShardLevel.Intra, ShardLevel.None) => levels.Intra(grads),
            _ => new Cost(),
        };
        var a = t.Accumulation;
        return new TrafficEstimate(a * micro.IntraBytes + boundary.IntraBytes,
            a * micro.InterBytes + boundary.InterBytes, micro.Seconds, boundary.Seconds);
    }

    private static double ActivationBytes(ModelSpec model, TrainingSpec t)
    {
        var tokens = (double)t.MicroBatch * t.SequenceLength;
        return 2 * tokens * model.Hidden * model.Layers + ActivationBytesPerToken * tokens * model.Hidden;
    }

    private static string Gib(double bytes) => $"{bytes / (1024.0 * 1024 * 1024):F1} GiB";

    /// <summary>Whether <paramref name="memory"/> fits a device of <paramref name="cluster"/>, and why.</summary>
    internal static (bool Fits, string Reason) Fit(MemoryEstimate memory, ClusterSpec cluster) =>
        memory.Total <= cluster.DeviceMemoryBytes
            ? (true, $"fits: {Gib(memory.Total)} of {Gib(cluster.DeviceMemoryBytes)} per device")
            : (false, $"needs {Gib(memory.Total)} per device, more than the {Gib(cluster.DeviceMemoryBytes)} " +
                "available");

    private static string Ratio(double a, double b) => b == 0 ? (a == 0 ? "the same" : "more than") : $"{a / b:F2}x";

    /// <summary>Ring costs on each level for a buffer of S bytes (one reduce-scatter or one all-gather).</summary>
    private readonly struct LevelCosts(ClusterSpec c)
    {
        private int M => c.GroupSize;
        private int G => c.Ranks / c.GroupSize;

        /// <summary>Ring over the m ranks of a group on S bytes.</summary>
        public Cost Intra(double s) => M == 1 ? new Cost() : new Cost((M - 1.0) / M * s, 0,
            (M - 1) * c.IntraLatency + (M - 1.0) / M * s / c.IntraBandwidth);

        /// <summary>Ring over the g same-local-rank ranks on the 1/m slice of S bytes, <paramref name="phases"/> times
        /// (2 for all-reduce).</summary>
        public Cost Inter(double s, int phases = 1) => G == 1 ? new Cost()
            : new Cost(0, phases * (G - 1.0) / G * s / M,
                phases * ((G - 1) * c.InterLatency + (G - 1.0) / G * s / M / c.InterBandwidth));

        /// <summary>A hierarchical (intra + inter) reduce-scatter or all-gather of S bytes.</summary>
        public Cost Global(double s) => Intra(s) + Inter(s);
    }

    private readonly record struct Cost(double IntraBytes, double InterBytes, double Seconds)
    {
        public static Cost operator +(Cost a, Cost b) => new(a.IntraBytes + b.IntraBytes, a.InterBytes + b.InterBytes,
            a.Seconds + b.Seconds);
    }

    private sealed record TrafficEstimate(double IntraBytes, double InterBytes, double MicroStepSeconds,
        double BoundarySeconds);
}

/// <summary>Predicted bytes per rank by component.</summary>
/// <param name="Parameters">Parameter slice.</param>
/// <param name="Gradients">Gradient slice.</param>
/// <param name="Optimizer">Optimizer state slice (master weights and moments).</param>
/// <param name="Activations">Activation memory of one micro-step.</param>
/// <param name="GatheredParameters">Transient gathered parameters (0 when parameters are replicated).</param>
public sealed record MemoryEstimate(double Parameters, double Gradients, double Optimizer, double Activations,
    double GatheredParameters)
{
    /// <summary>Persistent model states: parameters + gradients + optimizer (the paper's M).</summary>
    public double ModelStates => Parameters + Gradients + Optimizer;

    /// <summary>Everything: model states, activations and gathered parameters.</summary>
    public double Total => ModelStates + Activations + GatheredParameters;
}

/// <summary>The cost model's view of one strategy.</summary>
/// <param name="Strategy">The strategy.</param>
/// <param name="Memory">Bytes per rank.</param>
/// <param name="IntraBytesPerStep">Bytes one rank sends inside its group per global step.</param>
/// <param name="InterBytesPerStep">Bytes one rank sends to other groups per global step.</param>
/// <param name="ComputeSeconds">Forward and backward time per global step.</param>
/// <param name="CommunicationSeconds">Collective time per global step.</param>
/// <param name="OptimizerSeconds">Optimizer time per global step.</param>
/// <param name="StepSeconds">Predicted time per global step.</param>
/// <param name="TokensPerSecond">Predicted throughput of the whole job.</param>
/// <param name="Feasible">True when it fits in device memory.</param>
/// <param name="Reason">Why it fits or not.</param>
public sealed record StrategyEstimate(ShardingStrategy Strategy, MemoryEstimate Memory, double IntraBytesPerStep,
    double InterBytesPerStep,
    double ComputeSeconds, double CommunicationSeconds, double OptimizerSeconds, double StepSeconds,
        double TokensPerSecond, bool Feasible, string Reason);

/// <summary>Every strategy's estimate and the recommendation.</summary>
/// <param name="Model">The model.</param>
/// <param name="Cluster">The cluster.</param>
/// <param name="Training">The training run.</param>
/// <param name="Strategies">One estimate per strategy considered.</param>
/// <param name="Recommended">The fastest feasible strategy, or null when none fits.</param>
/// <param name="Reasons">Why it was chosen, in sentences.</param>
public sealed record ParoPlan(ModelSpec Model, ClusterSpec Cluster, TrainingSpec Training,
    IReadOnlyList<StrategyEstimate> Strategies,
    ShardingStrategy? Recommended, IReadOnlyList<string> Reasons)
{
    /// <summary>The plan as a table (memory in GiB per GPU, traffic in GB sent per GPU per step): what
    /// <c>paro plan</c> prints and <c>#!paro plan</c> shows.</summary>
    public Reporting.TextTable ToTable()
    {
        static string G(double bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString("F1", CultureInfo.InvariantCulture);
        static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
        var rows = Strategies.Select(e => (IReadOnlyList<string>)
        [
            e.Strategy.KnownAs is { } known ? $"{e.Strategy.Code} ({known})" : e.Strategy.Code,
            e.Feasible ? "yes" : "no", G(e.Memory.Parameters), G(e.Memory.Gradients), G(e.Memory.Optimizer),
            G(e.Memory.Total), F(e.IntraBytesPerStep / 1e9, "F2"), F(e.InterBytesPerStep / 1e9, "F2"),
            F(e.StepSeconds, "F3"), F(e.TokensPerSecond, "F0"),
        ]).ToList();
        var trainable = F(100 * Model.TrainableParameters / Model.TotalParameters, "G3");
        var title = $"{Model.Name} ({trainable} % of the parameters trained) on {Cluster.Name}, groups of " +
            $"{Cluster.GroupSize}, accumulation {Training.Accumulation}";
        return new(title,
            ["strategy", "fits", "params GiB", "grads GiB", "optimizer GiB", "total GiB", "intra GB/step",
                "inter GB/step", "step s", "tokens/s"],
            rows, [$"recommended: {Recommended?.Code ?? "none"}", .. Reasons.Select(r => $"  {r}")]);
    }
}
