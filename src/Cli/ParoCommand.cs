using System.CommandLine;
using System.Globalization;
using Toolkit.Paro;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit paro plan|train</c> (and the hidden <c>rank</c> that mpiexec starts).</summary>
internal static class ParoCommand
{
    public static Command Create() => new("paro", "PaRO sharded data-parallel training and its cost model.") { Plan(), Train(), Rank() };

    private static Command Plan()
    {
        var d = new ParoPlanOptions();
        var model = new Option<string>("--model") { Description = "llama-7b, llama-13b or llama-65b.", DefaultValueFactory = _ => d.Model };
        var parameters = new Option<double?>("--parameters") { Description = "Explicit parameter count (overrides --model), with --layers and --hidden." };
        var layers = new Option<int>("--layers") { Description = "Layers of an explicit model.", DefaultValueFactory = _ => d.Layers };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size of an explicit model.", DefaultValueFactory = _ => d.Hidden };
        var fraction = new Option<double>("--trainable-fraction") { Description = "Trainable share of parameters (1 full, 0.0625 partial, 0.003 PEFT).", DefaultValueFactory = _ => d.TrainableFraction };
        var gpus = new Option<int>("--gpus") { Description = "Number of GPUs (n).", DefaultValueFactory = _ => d.Gpus };
        var perNode = new Option<int>("--gpus-per-node") { Description = "GPUs per node = group size (m).", DefaultValueFactory = _ => d.GpusPerNode };
        var accumulation = new Option<int>("--accumulation") { Description = "Micro-steps per optimizer step (A).", DefaultValueFactory = _ => d.Accumulation };
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per micro-step per GPU.", DefaultValueFactory = _ => d.MicroBatch };
        var sequence = new Option<int>("--sequence-length") { Description = "Tokens per sequence.", DefaultValueFactory = _ => d.SequenceLength };
        var memory = new Option<double>("--device-memory") { Description = "Device memory in GiB.", DefaultValueFactory = _ => d.DeviceMemory };
        var network = new Option<double>("--network") { Description = "Network per node in Gb/s, shared by its GPUs.", DefaultValueFactory = _ => d.Network };
        var intra = new Option<double?>("--intra-bandwidth") { Description = "Intra-node bandwidth per GPU in GB/s (default 150)." };
        var inter = new Option<double?>("--inter-bandwidth") { Description = "Inter-node bandwidth per GPU in GB/s (default from --network)." };
        var tflops = new Option<double?>("--tflops") { Description = "Sustained TFLOP/s per GPU (default 156)." };
        var gathers = new Option<int>("--gathers") { Description = "Parameter all-gathers per micro-step: 2 = ZeRO-3 re-gathers for backward, 1 = this engine.", DefaultValueFactory = _ => d.Gathers };
        var json = new Option<FileInfo?>("--json") { Description = "Write the plan as JSON to this file." };
        var command = new Command("plan", "Predict memory, traffic and step time of every strategy and recommend one.")
            { model, parameters, layers, hidden, fraction, gpus, perNode, accumulation, microBatch, sequence, memory, network, intra, inter, tflops, gathers, json };
        command.SetAction(parse =>
        {
            var plan = new ParoPlanOptions
            {
                Model = parse.GetValue(model)!, Parameters = parse.GetValue(parameters), Layers = parse.GetValue(layers), Hidden = parse.GetValue(hidden),
                TrainableFraction = parse.GetValue(fraction), Gpus = parse.GetValue(gpus), GpusPerNode = parse.GetValue(perNode),
                Accumulation = parse.GetValue(accumulation), MicroBatch = parse.GetValue(microBatch), SequenceLength = parse.GetValue(sequence),
                DeviceMemory = parse.GetValue(memory), Network = parse.GetValue(network), IntraBandwidth = parse.GetValue(intra),
                InterBandwidth = parse.GetValue(inter), Tflops = parse.GetValue(tflops), Gathers = parse.GetValue(gathers),
            }.Plan();
            PrintPlan(plan);
            if (parse.GetValue(json) is { } file) File.WriteAllText(file.FullName, ParoPlanJson.From(plan).Serialize());
            return 0;
        });
        return command;
    }

    private static Command Train()
    {
        var d = new ParoTrainOptions();
        var strategy = new Option<string>("--strategy") { Description = "Strategy code (NIG) or alias (ddp, zero1, zero2, zero3, mics, hsdp).", DefaultValueFactory = _ => d.Strategy };
        var ranks = new Option<int>("--ranks", "--np") { Description = "Ranks (n).", DefaultValueFactory = _ => d.Ranks };
        var groupSize = new Option<int>("--group-size") { Description = "Ranks per group (m), dividing --ranks.", DefaultValueFactory = _ => d.GroupSize };
        var accumulation = new Option<int>("--accumulation") { Description = "Micro-steps per optimizer step (A).", DefaultValueFactory = _ => d.Accumulation };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => d.Steps };
        var seed = new Option<int>("--seed") { Description = "Seed of weights and data.", DefaultValueFactory = _ => d.Seed };
        var model = new Option<string>("--model") { Description = "GPT preset: tiny, small, medium, base.", DefaultValueFactory = _ => d.Model };
        var precision = new Option<ParoPrecision>("--precision") { Description = "fp32 or bf16.", DefaultValueFactory = _ => d.Precision };
        var launcher = new Option<string>("--launcher") { Description = "inproc (threads) or mpi (mpiexec processes).", DefaultValueFactory = _ => "inproc" };
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per micro-batch per rank.", DefaultValueFactory = _ => d.MicroBatch };
        var lr = new Option<double>("--lr") { Description = "AdamW learning rate.", DefaultValueFactory = _ => d.LearningRate };
        var data = new Option<FileInfo?>("--data") { Description = "A UTF-8 text file to train on (default: the embedded synthetic stories)." };
        var runs = new Option<string>("--runs-dir") { Description = "Folder for run folders.", DefaultValueFactory = _ => d.RunsDirectory };
        var json = new Option<FileInfo?>("--json") { Description = "Write the result as JSON to this file." };
        var collectives = new Option<string>("--collectives") { Description = "native, ring, hierarchical or ho-ring.", DefaultValueFactory = _ => d.Collectives };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Save a sharded checkpoint every K steps (0: never)." };
        var resume = new Option<DirectoryInfo?>("--resume") { Description = "Resume from a checkpoint folder (runs/<id>/checkpoints/step-K) written with the same settings." };
        launcher.AcceptOnlyFromAmong("inproc", "mpi");
        var command = new Command("train", "Train a small GPT under one strategy; measure memory, traffic and throughput.")
            { strategy, ranks, groupSize, accumulation, steps, seed, model, precision, launcher, microBatch, lr, data, runs, json, checkpointEvery, resume, collectives };
        command.SetAction(async (parse, token) =>
        {
            var options = new ParoTrainOptions
            {
                Strategy = parse.GetValue(strategy)!, Ranks = parse.GetValue(ranks), GroupSize = parse.GetValue(groupSize),
                Accumulation = parse.GetValue(accumulation), Steps = parse.GetValue(steps), Seed = parse.GetValue(seed),
                Model = parse.GetValue(model)!, Precision = parse.GetValue(precision),
                Launcher = parse.GetValue(launcher) == "mpi" ? Launcher.Mpi : Launcher.InProcess,
                MicroBatch = parse.GetValue(microBatch), LearningRate = parse.GetValue(lr), DataPath = parse.GetValue(data)?.FullName,
                RunsDirectory = parse.GetValue(runs)!, CheckpointEvery = parse.GetValue(checkpointEvery), Collectives = parse.GetValue(collectives)!, ResumeFrom = parse.GetValue(resume)?.FullName,
            }.Validate();
            var progress = new Progress<MetricPoint>(p =>
            {
                if (p.Rank == 0 && p.Name == "loss")
                    Console.WriteLine($"step {p.Step + 1,4}/{options.Steps}  loss {p.Value.ToString("F4", CultureInfo.InvariantCulture)}");
            });
            var result = await ParoTrainJob.RunAsync(options, progress, token);
            PrintResult(result);
            if (parse.GetValue(json) is { } file) File.WriteAllText(file.FullName, System.Text.Json.JsonSerializer.Serialize(result, ParoTrainJob.Json));
            return 0;
        });
        return command;
    }

    private static Command Rank()
    {
        var run = new Option<DirectoryInfo>("--run") { Description = "Run folder whose config.json holds the options.", Required = true };
        var command = new Command("rank", "One MPI rank of a PaRO job (started by mpiexec).") { Hidden = true, Options = { run } };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(run)!.FullName;
            ParoTrainJob.RunMpiRank(ParoMpiLauncher.ReadOptions(path), path);
            return 0;
        });
        return command;
    }

    private static void PrintPlan(ParoPlan plan)
    {
        static string G(double bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString("F1", CultureInfo.InvariantCulture);
        Console.WriteLine($"{plan.Model.Name}, Ψ'/Ψ = {plan.Model.TrainableParameters / plan.Model.TotalParameters:G3}; {plan.Cluster.Name}, m = {plan.Cluster.GroupSize}; A = {plan.Training.Accumulation}");
        Console.WriteLine($"{"strategy",-9}{"fits",5}{"params",9}{"grads",9}{"optim",9}{"total",9}{"intra GB",10}{"inter GB",10}{"step s",9}{"tok/s",10}");
        foreach (var e in plan.Strategies)
            Console.WriteLine($"{e.Strategy.Code + (e.Strategy.KnownAs is { } k ? "" : ""),-9}{(e.Feasible ? "yes" : "no"),5}{G(e.Memory.Parameters),9}{G(e.Memory.Gradients),9}{G(e.Memory.Optimizer),9}{G(e.Memory.Total),9}" +
                $"{e.IntraBytesPerStep / 1e9,10:F2}{e.InterBytesPerStep / 1e9,10:F2}{e.StepSeconds,9:F3}{e.TokensPerSecond,10:F0}");
        Console.WriteLine($"(memory in GiB per GPU; traffic in GB sent per GPU per step)");
        Console.WriteLine($"recommended: {plan.Recommended?.Code ?? "none"}");
        foreach (var reason in plan.Reasons) Console.WriteLine($"  {reason}");
    }

    private static void PrintResult(ParoTrainResult r)
    {
        Console.WriteLine($"strategy {r.Strategy}, {r.Ranks} ranks in groups of {r.GroupSize}, A = {r.Accumulation}, {r.Precision}, {r.ParameterCount:N0} parameters");
        Console.WriteLine($"loss     {r.Steps[0].Loss:F4} -> {r.Steps[^1].Loss:F4}");
        foreach (var m in r.Memory)
            Console.WriteLine($"rank {m.Rank}   params {m.ParamsBytes} B, grads {m.GradsBytes} B, optimizer {m.OptimizerBytes} B, peak {m.PeakBytes} B");
        Console.WriteLine($"traffic  {r.Comm.IntraBytesPerStep} B intra-group, {r.Comm.InterBytesPerStep} B inter-group per rank per step");
        Console.WriteLine($"speed    {r.Throughput.StepSeconds * 1000:F1} ms per step, {r.Throughput.TokensPerSecond:F0} tokens/s");
        Console.WriteLine($"run      {r.RunPath} (report.html, result.json)");
    }
}
