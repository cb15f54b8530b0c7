using System.CommandLine;
using Toolkit.Comm;
using Toolkit.Paro;

namespace Toolkit.Cli;

/// <summary><c>toolkit bench paro|layerwise|collectives|rl|generate|infer --json PATH</c>: benchmarks that write
/// machine-readable results.</summary>
internal static class BenchCommand
{
    public static Command Create() => new("bench", "Benchmarks that write machine-readable results.")
    {
        Benchmark<ParoBenchmarkOptions, ParoBenchmarkReport>("paro",
            "Run every PaRO strategy, calibrate the cost model, compare predicted and measured.",
            (o, token) => ParoBenchmark.RunAsync(o, Console.WriteLine, token),
            report =>
            {
                foreach (var r in report.Rankings)
                {
                    Console.WriteLine(
                        $"{r.Launcher} A={r.Accumulation}: Spearman {r.Spearman:F2}, Kendall {r.KendallTau:F2}, mean " +
                            $"|error| {r.MeanAbsoluteError:P0}{(r.RoundsAgreement is { } agreement ? $"; rounds " +
                                $"agree with each other at Spearman {agreement:F2}" : "")}; measured {string.Join(" < ",
                                    r.MeasuredOrder)}");
                    Console.WriteLine(
                        $"{"",-8}recommended {r.Recommended}: {r.RecommendedOverBest:F2}x the measured best's step " +
                            $"time{(r.GggOverBest is { } ggg ? $"; the best {ggg:F2}x ZeRO-3 (GGG)" : "")}" +
                        (r.Pairs is { } pairs
                            ? $"; of {pairs.Total} pairs every round ordered {pairs.Resolved} alike, the " +
                                $"prediction {pairs.Agreeing} of them" : ""));
                }
            }),
        Benchmark<LayerwiseBenchmarkOptions, LayerwiseBenchmarkReport>("layerwise",
            "One PaRO job (default GGG, A = 4, the base GPT) with whole-model gathering and layer-wise, side by " +
                "side: throughput, traffic, measured peak against the allowance of model states plus two blocks.",
            (o, token) => LayerwiseBenchmark.RunAsync(o, Console.WriteLine, token),
            report => Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"layer-wise over whole model: throughput {report.ThroughputRatio:F2}x, peak {report.PeakRatio:F2}x; " +
                    $"peak {report.Layerwise.PeakBytes / 1048576.0:F1} " +
                        $"MiB {(report.WithinAllowance ? "within" : "over")} the " +
                            $"allowance {report.AllowanceBytes / 1048576.0:F1} MiB (model states + 2 blocks' " +
                                $"parameters and gradients); losses differ by at " +
                                    $"most {report.MaxLossRelativeDifference:E1} (relative)"))),
        Benchmark<CollectiveBenchOptions, CollectiveBenchReport>("collectives",
            "Time all-reduce algorithms on MPI ranks (optionally on an emulated multi-node cluster) and compare with " +
                "the simulator.",
            (o, token) => CollectiveBenchJob.RunAsync(o, token, new JobProgress()),
            Facts.Print),
        Benchmark<Toolkit.Rl.RlBenchmarkOptions, Toolkit.Rl.RlBenchmarkReport>("rl",
            "RL rollout throughput and step time: synchronous rollouts against C3PO++ at equal budget, at several " +
                "batch sizes (default: the long-tail task).",
            (o, token) => Toolkit.Rl.RlBenchmark.RunAsync(o, Console.WriteLine, token),
            _ => { }),
        Benchmark<Toolkit.LlamaCpp.GenerateBenchmarkOptions, Toolkit.LlamaCpp.GenerateBenchmarkReport>("generate",
            "The generation engine's fp32 decode and prefill rates against llama.cpp on the same weights and " +
            "threads, at each batch size; and a 1 GB checkpoint's load time against reading its files.",
            (o, token) => Task.Run(() => Toolkit.LlamaCpp.GenerateBenchmark.Run(o, Console.WriteLine), token),
            _ => { }),
        Benchmark<Toolkit.BatchInference.InferBenchmarkOptions, Toolkit.BatchInference.InferBenchmarkReport>("infer",
            "Batch-inference throughput: the compute-only ceiling, the sequential baseline, the pipelined worker, " +
                "worker processes, and two models as a DAG against one after another.",
            (o, token) => Toolkit.BatchInference.InferBenchmark.RunAsync(o, Console.WriteLine, token),
            report => Console.WriteLine(
                $"pipelined over sequential: {report.PipelinedOverSequential:F2}x; two-model DAG over one after " +
                    $"another: {report.DagOverOneAfterAnother:F2}x")),
    };

    /// <summary>A benchmark command: its options bound and checked, the run, a summary printed, the report written to
    /// <c>--json</c>.</summary>
    private static Command Benchmark<TOptions, TReport>(string name, string description, Func<TOptions,
        CancellationToken, Task<TReport>> run, Action<TReport> summarise)
        where TOptions : class, new()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var command = new Command(name, description) { json };
        var options = new CliOptions<TOptions>(command, new(), $"bench {name}");
        command.SetAction(async (parse, token) =>
        {
            var report = await run(options.Bind(parse), token);
            summarise(report);
            Toolkit.Runtime.ToolkitJson.Write(parse.GetValue(json)!.FullName, report);
            return 0;
        });
        return command;
    }
}
