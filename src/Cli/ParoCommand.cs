using System.CommandLine;
using System.Globalization;
using Toolkit.Paro;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit paro plan|train|compare</c>.</summary>
internal static class ParoCommand
{
    public static Command Create() => new("paro", "PaRO sharded data-parallel training and its cost model.") { Plan(),
        Train(), Compare() };

    private static Command Plan()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Write the plan as JSON to this file." };
        var command = new Command("plan",
            "Predict memory, traffic and step time of every strategy and recommend one.") { json };
        var options = new CliOptions<ParoPlanOptions>(command, new(), "paro plan");
        command.SetAction(parse =>
        {
            var plan = options.Bind(parse).Plan();
            PrintPlan(plan);
            if (parse.GetValue(json) is { } file) File.WriteAllText(file.FullName, ParoPlanJson.From(plan).Serialize());
            return 0;
        });
        return command;
    }

    private static Command Train()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Write the result as JSON to this file." };
        var command = new Command("train",
            "Train a model (a GPT preset, a checkpoint or a Hugging Face folder) under one strategy; measure memory, " +
                "traffic and throughput.") { json };
        var options = new CliOptions<ParoTrainOptions>(command, new(), "paro train");
        command.SetAction(async (parse, token) =>
        {
            var o = options.Bind(parse);
            var result = await ParoTrainJob.RunAsync(o, LossLines(o.Steps), token);
            Facts.Print(result);
            Facts.WriteJson(parse.GetValue(json), result);
            return 0;
        });
        return command;
    }

    private static Command Compare()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Write the results as JSON to this file." };
        var command = new Command("compare",
            "Train the same job under several strategies and compare memory, traffic and throughput.") { json };
        var options = new CliOptions<ParoCompareOptions>(command, new(), "paro compare");
        command.SetAction(async (parse, token) =>
        {
            var o = options.Bind(parse);
            var results = await ParoCompare.RunAsync(o, null, token);
            foreach (var r in results) Facts.Print(r);
            Facts.WriteJson(parse.GetValue(json), results);
            return 0;
        });
        return command;
    }

    private static JobProgress LossLines(int steps) => new JobProgress(p =>
    {
        if (p.Rank == 0 && p.Name == MetricNames.Loss)
            Console.WriteLine(
                $"step {p.Step + 1,4}/{steps}  loss {p.Value.ToString("F4", CultureInfo.InvariantCulture)}");
    });

    private static void PrintPlan(ParoPlan plan) => Console.Write(plan.ToTable().ToText());
}
