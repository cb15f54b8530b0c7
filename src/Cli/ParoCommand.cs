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

    private static void PrintPlan(ParoPlan plan)
    {
        static string G(double bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString("F1", CultureInfo.InvariantCulture);
        Console.WriteLine(
            $"{plan.Model.Name}, Ψ'/Ψ " +
                $"= {plan.Model.TrainableParameters / plan.Model.TotalParameters:G3}; {plan.Cluster.Name}, m " +
                    $"= {plan.Cluster.GroupSize}; A = {plan.Training.Accumulation}");
        Console.WriteLine(
            $"{"strategy",-9}{"fits",5}{"params",9}{"grads",9}{"optim",9}{"total",9}{"intra GB",10}{"inter " +
                "GB",10}{"step s",9}{"tok/s",10}");
        foreach (var e in plan.Strategies)
            Console.WriteLine(
                $"{e.Strategy.Code,-9}{(e.Feasible ? "yes" : "no"),5}{G(e.Memory.Parameters),9}{G(e.Memory.Gradients),9}{G(e.Memory.Optimizer),9}{G(e.Memory.Total),9}" +
                $"{e.IntraBytesPerStep / 1e9,10:F2}{e.InterBytesPerStep / 1e9,10:F2}{e.StepSeconds,9:F3}{e.TokensPerSecond,10:F0}");
        Console.WriteLine($"(memory in GiB per GPU; traffic in GB sent per GPU per step)");
        Console.WriteLine($"recommended: {plan.Recommended?.Code ?? "none"}");
        foreach (var reason in plan.Reasons) Console.WriteLine($"  {reason}");
    }

}
