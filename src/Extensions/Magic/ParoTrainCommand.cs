using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Paro;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro train ...</c>: the twin of <see cref="ParoTrainJob.RunAsync"/> (and <c>toolkit paro train</c>), with live loss, memory and traffic charts.</summary>
public sealed class ParoTrainCommand : ParoJobCommand
{
    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective()
    {
        var directive = new KernelActionDirective("train", "Train a small GPT under one strategy; loss, memory and traffic charts update while it runs.");
        foreach (var parameter in TrainParameters.Create()) directive.Parameters.Add(parameter);
        return directive;
    }

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--strategy</c>.</summary>
    public string Strategy { get; set; } = Defaults.Strategy;

    private protected override string JobStrategy => Strategy;

    internal static async Task HandleAsync(ParoTrainCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!paro train", Options);
        var metrics = new Collector<MetricPoint>();
        var job = ParoTrainJob.RunAsync(command.ToOptions(), metrics, context.CancellationToken);
        var result = await LiveDisplay.RunAsync(context, job, () => ParoCharts.Live(metrics.Snapshot()), TimeSpan.FromSeconds(1));
        context.DisplayAs(ResultTable(result), "text/html");
    }

    internal static string ResultTable(ParoTrainResult r) => Html.Table($"PaRO {r.Strategy}: {Path.GetFileName(r.RunPath)}",
    [
        ("ranks / group size / A / precision", $"{r.Ranks} / {r.GroupSize} / {r.Accumulation} / {r.Precision}"),
        ("parameters", r.ParameterCount.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)),
        ("loss", $"{r.Steps[0].Loss:F4} -> {r.Steps[^1].Loss:F4}"),
        ("rank 0 bytes: params / grads / optimizer / peak", $"{r.Memory[0].ParamsBytes} / {r.Memory[0].GradsBytes} / {r.Memory[0].OptimizerBytes} / {r.Memory[0].PeakBytes}"),
        ("bytes per rank per step: intra / inter", $"{r.Comm.IntraBytesPerStep} / {r.Comm.InterBytesPerStep}"),
        ("median step / tokens per second", $"{r.Throughput.StepSeconds * 1000:F1} ms / {r.Throughput.TokensPerSecond:F0}"),
        ("run folder", r.RunPath),
    ]);
}

/// <summary>The parameters shared by <c>#!paro train</c> and <c>#!paro compare</c>.</summary>
internal static class TrainParameters
{
    public static IEnumerable<KernelDirectiveParameter> Create(bool withStrategy = true)
    {
        var d = new ParoTrainOptions();
        if (withStrategy)
            yield return new KernelDirectiveParameter("--strategy", $"Strategy code or alias (default {d.Strategy}).").AddCompletions(() => ShardingStrategy.Effective.Select(s => s.Code).Concat(ShardingStrategy.Aliases.Keys));
        yield return new KernelDirectiveParameter("--ranks", $"Ranks (default {d.Ranks}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--np", "Same as --ranks.") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--group-size", $"Ranks per group (default {d.GroupSize}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--accumulation", $"Micro-steps per step (default {d.Accumulation}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--steps", $"Optimizer steps (default {d.Steps}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--seed", $"Seed (default {d.Seed}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--model", $"tiny, small, medium or base (default {d.Model}).").AddCompletions(() => Models.GptConfig.Presets.Keys);
        yield return new KernelDirectiveParameter("--precision", "fp32 or bf16 (default fp32).").AddCompletions(() => ["fp32", "bf16"]);
        yield return new KernelDirectiveParameter("--launcher", "inproc or mpi (default inproc).").AddCompletions(() => ["inproc", "mpi"]);
        yield return new KernelDirectiveParameter("--micro-batch", $"Sequences per micro-batch per rank (default {d.MicroBatch}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--lr", $"Learning rate (default {d.LearningRate}).") { TypeHint = "number" };
        yield return new KernelDirectiveParameter("--runs-dir", "Folder for run folders (default runs).") { TypeHint = "file" };
        yield return new KernelDirectiveParameter("--collectives", "native, ring, hierarchical or ho-ring (default ring).").AddCompletions(() => Comm.CollectiveAlgorithms.Names);
    }
}
