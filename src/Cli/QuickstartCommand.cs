using System.CommandLine;
using System.Globalization;
using Toolkit.Quickstart;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit quickstart</c>: the embedded-default job (in-process ranks, no MPI) with a terminal progress line and an HTML report.</summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var defaults = new QuickstartOptions();
        var ranks = new Option<int>("--ranks") { Description = "In-process ranks.", DefaultValueFactory = _ => defaults.Ranks };
        var groupSize = new Option<int>("--group-size") { Description = "Ranks per group (must divide --ranks).", DefaultValueFactory = _ => defaults.GroupSize };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => defaults.Steps };
        var seed = new Option<int>("--seed") { Description = "Seed of data and weights.", DefaultValueFactory = _ => defaults.Seed };
        var runs = new Option<string>("--runs-dir") { Description = "Folder for run folders.", DefaultValueFactory = _ => defaults.RunsDirectory };
        var command = new Command("quickstart", "Train a small network data-parallel on in-process ranks; writes runs/<id>/ with metrics and report.html.")
            { ranks, groupSize, steps, seed, runs };
        command.SetAction(async (parse, token) =>
        {
            var options = new QuickstartOptions
            {
                Ranks = parse.GetValue(ranks), GroupSize = parse.GetValue(groupSize), Steps = parse.GetValue(steps),
                Seed = parse.GetValue(seed), RunsDirectory = parse.GetValue(runs)!,
            }.Validate();
            var progress = new Progress<MetricPoint>(p =>
            {
                if (p.Rank == 0 && p.Name == "loss" && !Console.IsOutputRedirected)
                    Console.Write($"\rstep {p.Step + 1}/{options.Steps}  loss {p.Value.ToString("F4", CultureInfo.InvariantCulture)}   ");
            });
            var result = await QuickstartJob.RunAsync(options, progress, token);
            Console.WriteLine();
            Console.WriteLine($"run      {result.RunPath}");
            Console.WriteLine($"loss     {result.Loss[0]:F4} -> {result.Loss[^1]:F4}");
            Console.WriteLine($"traffic  up to {result.IntraBytesPerStep} B intra-group and {result.InterBytesPerStep} B inter-group per rank per step");
            Console.WriteLine($"step     {result.StepSeconds * 1000:F1} ms (median)");
            Console.WriteLine($"report   {result.ReportPath}");
            return 0;
        });
        return command;
    }
}
