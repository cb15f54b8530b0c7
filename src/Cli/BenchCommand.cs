using System.CommandLine;
using Toolkit.Comm;
using Toolkit.Paro;

namespace Toolkit.Cli;

/// <summary><c>toolkit bench paro|collectives --json PATH</c>: benchmarks that write machine-readable results.</summary>
internal static class BenchCommand
{
    public static Command Create() => new("bench", "Benchmarks that write machine-readable results.") { Paro(), Layerwise(), Collectives(), Rl(), Infer() };

    private static Command Rl()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command("rl", "RL rollout throughput and step time: synchronous rollouts against C3PO++ at equal budget, at several batch sizes (default: the long-tail task).") { json };
        var options = new CliOptions<Toolkit.Rl.RlBenchmarkOptions>(command, new(), "bench rl");
        command.SetAction(async (parse, token) =>
        {
            var report = await Toolkit.Rl.RlBenchmark.RunAsync(options.Bind(parse), Console.WriteLine, token);
            Toolkit.Runtime.ToolkitJson.Write(parse.GetValue(json)!.FullName, report);
            return 0;
        });
        return command;
    }

    private static Command Infer()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command("infer", "Batch-inference throughput: the compute-only ceiling, the sequential baseline, the pipelined worker, worker processes, and two models as a DAG against one after another.") { json };
        var options = new CliOptions<Toolkit.Inference.InferBenchmarkOptions>(command, new(), "bench infer");
        command.SetAction(async (parse, token) =>
        {
            var report = await Toolkit.Inference.InferBenchmark.RunAsync(options.Bind(parse), Console.WriteLine, token);
            Console.WriteLine($"pipelined over sequential: {report.PipelinedOverSequential:F2}x; two-model DAG over one after another: {report.DagOverOneAfterAnother:F2}x");
            Toolkit.Runtime.ToolkitJson.Write(parse.GetValue(json)!.FullName, report);
            return 0;
        });
        return command;
    }

    private static Command Paro()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command("paro", "Run every PaRO strategy, calibrate the cost model, compare predicted and measured.") { json };
        var options = new CliOptions<ParoBenchmarkOptions>(command, new(), "bench paro");
        command.SetAction(async (parse, token) =>
        {
            var report = await ParoBenchmark.RunAsync(options.Bind(parse), Console.WriteLine, token);
            foreach (var r in report.Rankings)
                Console.WriteLine($"{r.Launcher} A={r.Accumulation}: Spearman {r.Spearman:F2}, Kendall {r.KendallTau:F2}, mean |error| {r.MeanAbsoluteError:P0}; measured {string.Join(" < ", r.MeasuredOrder)}");
            ParoBenchmark.WriteJson(report, parse.GetValue(json)!.FullName);
            return 0;
        });
        return command;
    }

    private static Command Layerwise()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command("layerwise", "One PaRO job (default GGG, A = 4, the base GPT) with whole-model gathering and layer-wise, side by side: throughput, traffic, measured peak against the allowance of model states plus two blocks.") { json };
        var options = new CliOptions<LayerwiseBenchmarkOptions>(command, new(), "bench layerwise");
        command.SetAction(async (parse, token) =>
        {
            var report = await LayerwiseBenchmark.RunAsync(options.Bind(parse), Console.WriteLine, token);
            Console.WriteLine(System.FormattableString.Invariant(
                $"layer-wise over whole model: throughput {report.ThroughputRatio:F2}x, peak {report.PeakRatio:F2}x; peak {report.Layerwise.PeakBytes / 1048576.0:F1} MiB {(report.WithinAllowance ? "within" : "over")} the allowance {report.AllowanceBytes / 1048576.0:F1} MiB (model states + 2 blocks' parameters and gradients); losses differ by at most {report.MaxLossRelativeDifference:E1} (relative)"));
            Toolkit.Runtime.ToolkitJson.Write(parse.GetValue(json)!.FullName, report);
            return 0;
        });
        return command;
    }

    private static Command Collectives()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command("collectives", "Time all-reduce algorithms on MPI ranks (optionally on an emulated multi-node cluster) and compare with the simulator.") { json };
        var options = new CliOptions<CollectiveBenchOptions>(command, new(), "bench collectives");
        command.SetAction(async (parse, token) =>
        {
            var report = await CollectiveBenchJob.RunAsync(options.Bind(parse), token, new JobProgress());
            Facts.Print(report);
            Facts.WriteJson(parse.GetValue(json), report);
            return 0;
        });
        return command;
    }
}
