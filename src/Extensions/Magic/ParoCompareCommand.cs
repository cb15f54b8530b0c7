using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Plotly.NET;
using Toolkit.Paro;
using Toolkit.Reporting;
using Toolkit.Runs;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro compare --strategies NNN,NIG,GGG ...</c>: the twin of <see cref="ParoCompare.RunAsync"/>; measured memory, traffic and throughput side by side.</summary>
public sealed class ParoCompareCommand : KernelDirectiveCommand
{
    private static readonly ParoTrainOptions Defaults = new();

    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective()
    {
        var directive = new KernelActionDirective("compare", "Train the same job under several strategies and chart measured memory, traffic and throughput side by side.")
        {
            Parameters = { new KernelDirectiveParameter("--strategies", "Comma-separated codes (default: the ten trained strategies).") },
        };
        foreach (var parameter in TrainParameters.Create(withStrategy: false)) directive.Parameters.Add(parameter);
        return directive;
    }

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--strategies</c>.</summary>
    public string? Strategies { get; set; }
    /// <summary><c>--ranks</c>.</summary>
    public int Ranks { get; set; } = Defaults.Ranks;
    /// <summary><c>--np</c>.</summary>
    public int? Np { get; set; }
    /// <summary><c>--group-size</c>.</summary>
    public int GroupSize { get; set; } = Defaults.GroupSize;
    /// <summary><c>--accumulation</c>.</summary>
    public int Accumulation { get; set; } = Defaults.Accumulation;
    /// <summary><c>--steps</c>.</summary>
    public int Steps { get; set; } = Defaults.Steps;
    /// <summary><c>--seed</c>.</summary>
    public int Seed { get; set; } = Defaults.Seed;
    /// <summary><c>--model</c>.</summary>
    public string Model { get; set; } = Defaults.Model;
    /// <summary><c>--precision</c>.</summary>
    public ParoPrecision Precision { get; set; } = Defaults.Precision;
    /// <summary><c>--launcher</c>.</summary>
    public string Launcher { get; set; } = "inproc";
    /// <summary><c>--micro-batch</c>.</summary>
    public int MicroBatch { get; set; } = Defaults.MicroBatch;
    /// <summary><c>--lr</c>.</summary>
    public double Lr { get; set; } = Defaults.LearningRate;
    /// <summary><c>--runs-dir</c>.</summary>
    public string RunsDir { get; set; } = Defaults.RunsDirectory;
    /// <summary><c>--collectives</c>.</summary>
    public string Collectives { get; set; } = Defaults.Collectives;

    internal ParoTrainOptions ToOptions() => new ParoTrainCommand
    {
        Ranks = Ranks, Np = Np, GroupSize = GroupSize, Accumulation = Accumulation, Steps = Steps, Seed = Seed, Model = Model,
        Precision = Precision, Launcher = Launcher, MicroBatch = MicroBatch, Lr = Lr, RunsDir = RunsDir, Collectives = Collectives,
    }.ToOptions();

    internal IReadOnlyList<string> StrategyList() => Strategies is null
        ? ShardingStrategy.Trained.Select(s => s.Code).ToList()
        : Strategies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static async Task HandleAsync(ParoCompareCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!paro compare", Options);
        var points = new Collector<(string Strategy, MetricPoint Point)>();
        var job = ParoCompare.RunAsync(command.ToOptions(), command.StrategyList(), points, context.CancellationToken);
        var results = await LiveDisplay.RunAsync(context, job, () => LossByStrategy(points.Snapshot()), TimeSpan.FromSeconds(1));
        context.Display(ParoCharts.MeasuredMemory(results), "text/html");
        context.Display(ParoCharts.MeasuredTraffic(results), "text/html");
        context.Display(ParoCharts.MeasuredThroughput(results), "text/html");
        context.DisplayAs(Html.Table("Measured per strategy (rank 0)", results.Select(r =>
            (r.Strategy, $"loss {r.Steps[^1].Loss:F4}; bytes params/grads/optimizer {r.Memory[0].ParamsBytes}/{r.Memory[0].GradsBytes}/{r.Memory[0].OptimizerBytes}; intra/inter per step {r.Comm.IntraBytesPerStep}/{r.Comm.InterBytesPerStep}; {r.Throughput.TokensPerSecond:F0} tokens/s"))), "text/html");
    }

    private static GenericChart LossByStrategy(IReadOnlyList<(string Strategy, MetricPoint Point)> points) =>
        Charts.Lines("loss of rank 0, strategies one after another", points.Where(p => p.Point.Rank == 0 && p.Point.Name == "loss")
            .GroupBy(p => p.Strategy).Select(g => (g.Key, (IReadOnlyList<MetricPoint>)g.Select(p => p.Point).ToList())));
}
