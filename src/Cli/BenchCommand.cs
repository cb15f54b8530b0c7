using System.CommandLine;
using Toolkit.Paro;

namespace Toolkit.Cli;

/// <summary><c>toolkit bench paro --json PATH</c>: every strategy, measured and predicted, as JSON.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var d = new ParoBenchmarkOptions();
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var steps = new Option<int>("--steps") { Description = "Steps per run.", DefaultValueFactory = _ => d.Job.Steps };
        var model = new Option<string>("--model") { Description = "GPT preset.", DefaultValueFactory = _ => d.Job.Model };
        var ranks = new Option<int>("--ranks") { Description = "Ranks.", DefaultValueFactory = _ => d.Job.Ranks };
        var groupSize = new Option<int>("--group-size") { Description = "Ranks per group.", DefaultValueFactory = _ => d.Job.GroupSize };
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per micro-batch per rank.", DefaultValueFactory = _ => d.Job.MicroBatch };
        var accumulations = new Option<string>("--accumulation") { Description = "Comma-separated A values.", DefaultValueFactory = _ => string.Join(',', d.Accumulations) };
        var noMpi = new Option<bool>("--no-mpi") { Description = "Skip the MPI runs." };
        var emulate = new Option<string?>("--emulate") { Description = "Also run on an emulated cluster GxM (G·M = --ranks, M = --group-size; needs root)." };
        var interBandwidth = new Option<string>("--inter-bandwidth") { Description = "Emulated link rate.", DefaultValueFactory = _ => d.InterBandwidth };
        var interLatency = new Option<string>("--inter-latency") { Description = "Emulated link latency (needs netem).", DefaultValueFactory = _ => d.InterLatency };
        var runs = new Option<string>("--runs-dir") { Description = "Folder for run folders.", DefaultValueFactory = _ => d.Job.RunsDirectory };
        var paro = new Command("paro", "Run every PaRO strategy, calibrate the cost model, compare predicted and measured.")
            { json, steps, model, ranks, groupSize, microBatch, accumulations, noMpi, runs, emulate, interBandwidth, interLatency };
        paro.SetAction(async (parse, token) =>
        {
            var options = new ParoBenchmarkOptions
            {
                Job = d.Job with
                {
                    Steps = parse.GetValue(steps), Model = parse.GetValue(model)!, Ranks = parse.GetValue(ranks), GroupSize = parse.GetValue(groupSize),
                    MicroBatch = parse.GetValue(microBatch), RunsDirectory = parse.GetValue(runs)!,
                },
                Accumulations = parse.GetValue(accumulations)!.Split(',').Select(a => int.TryParse(a, out var v) && v > 0 ? v
                    : throw new ArgumentException($"--accumulation takes positive integers separated by commas (got '{a}').")).ToList(),
                Mpi = !parse.GetValue(noMpi),
                Emulate = parse.GetValue(emulate),
                InterBandwidth = parse.GetValue(interBandwidth)!,
                InterLatency = parse.GetValue(interLatency)!,
            };
            var report = await ParoBenchmark.RunAsync(options, Console.WriteLine, token);
            foreach (var r in report.Rankings)
                Console.WriteLine($"{r.Launcher} A={r.Accumulation}: Spearman {r.Spearman:F2}, Kendall {r.KendallTau:F2}, mean |error| {r.MeanAbsoluteError:P0}; measured {string.Join(" < ", r.MeasuredOrder)}");
            ParoBenchmark.WriteJson(report, parse.GetValue(json)!.FullName);
            return 0;
        });
        return new Command("bench", "Benchmarks that write machine-readable results.") { paro, CollectiveBenchCommand.Create(), CollectiveBenchCommand.CreateRank() };
    }
}
