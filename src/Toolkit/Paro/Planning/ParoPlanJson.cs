using System.Text.Json;

namespace Toolkit.Paro;

/// <summary>The machine-readable form of a <see cref="ParoPlan"/> (<c>toolkit paro plan --json</c>).</summary>
/// <param name="Strategies">One row per strategy.</param>
/// <param name="Recommended">The recommended strategy code, or null when none fits.</param>
/// <param name="Reasons">Why.</param>
internal sealed record ParoPlanJson(IReadOnlyList<PlanRow> Strategies, string? Recommended,
    IReadOnlyList<string> Reasons)
{
    /// <summary>Converts a plan.</summary>
    public static ParoPlanJson From(ParoPlan plan) => new(
        plan.Strategies.Select(e => new PlanRow(e.Strategy.Code, e.Feasible,
            new PlanMemory(e.Memory.Parameters, e.Memory.Gradients, e.Memory.Optimizer, e.Memory.Activations,
                e.Memory.GatheredParameters, e.Memory.Total),
            e.IntraBytesPerStep, e.InterBytesPerStep, e.StepSeconds, e.TokensPerSecond, e.Reason)).ToList(),
        plan.Recommended?.Code, plan.Reasons);

    /// <summary>Indented camelCase JSON.</summary>
    public string Serialize() => JsonSerializer.Serialize(this, Runtime.ToolkitJson.Options);
}

/// <summary>One strategy in <see cref="ParoPlanJson"/>.</summary>
/// <param name="Name">Strategy code.</param>
/// <param name="Feasible">Fits in device memory.</param>
/// <param name="MemoryBytesPerRank">Bytes per rank by component.</param>
/// <param name="IntraBytesPerStep">Bytes per rank per step inside the group.</param>
/// <param name="InterBytesPerStep">Bytes per rank per step across groups.</param>
/// <param name="PredictedStepSeconds">Predicted step time.</param>
/// <param name="PredictedTokensPerSecond">Predicted throughput.</param>
/// <param name="Reason">Why it fits or not.</param>
internal sealed record PlanRow(string Name, bool Feasible, PlanMemory MemoryBytesPerRank, double IntraBytesPerStep,
    double InterBytesPerStep,
    double PredictedStepSeconds, double PredictedTokensPerSecond, string Reason);

/// <summary>Bytes per rank.</summary>
/// <param name="Params">Parameters.</param>
/// <param name="Grads">Gradients.</param>
/// <param name="Optimizer">Optimizer states.</param>
/// <param name="Activations">Activations.</param>
/// <param name="Gathered">Transient gathered parameters.</param>
/// <param name="Total">Everything.</param>
internal sealed record PlanMemory(double Params, double Grads, double Optimizer, double Activations, double Gathered,
    double Total);
