using System.CommandLine;
using System.Globalization;
using Toolkit.Rl;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit rl train</c>: GRPO with a mismatch correction (IcePop, TIS, MIS) on a verifiable task,
/// synchronous or C3PO++ rollouts.</summary>
internal static class RlCommand
{
    public static Command Create() => new("rl",
        "Ring-1T style RL: GRPO with IcePop / TIS / MIS and C3PO++ rollouts.")
    {
        Train(),
        new Command("experiment", "Experiments that reproduce the paper's comparisons.") { IcePop() },
    };

    private static Command IcePop()
    {
        var json = new Option<FileInfo?>("--json") { Description
            = "Write the result (every run's per-step diagnostics and the verdicts) as JSON to this file." };
        var command = new Command("icepop",
            "Vanilla GRPO, TIS and IcePop on the same MoE policy from low-precision rollouts, and fp32 rollouts as " +
                "the reference, over several seeds: per correction and step the mismatch, gradient norm, masked " +
                "fraction and held-out accuracy; which runs degraded.") { json };
        var options = new CliOptions<IcePopExperimentOptions>(command, new(), "rl experiment icepop");
        command.SetAction(async (parse, token) =>
        {
            var o = options.Bind(parse);
            var progress = new NamedRunProgress(x =>
            {
                if (x.Point.Name == RlTrainJob.Metrics.HeldOutAccuracy)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{x.Run,-14} step {x.Point.Step + 1,3}/{o.Job.Steps}  held-out accuracy {x.Point.Value:F3}"));
            });
            var result = await IcePopExperiment.RunAsync(o, progress, token);
            Facts.Print(result);
            Facts.WriteJson(parse.GetValue(json), result);
            return 0;
        });
        return command;
    }

    private static Command Train()
    {
        var json = new Option<FileInfo?>("--json") { Description
            = "Write the result (options and per-step diagnostics) as JSON to this file." };
        var command = new Command("train",
            "Warm-start a policy (a GPT preset or a Hugging Face folder) on a verifiable task, then train it with " +
                "GRPO from a separate rollout engine; per-step mismatch diagnostics.") { json };
        var options = new CliOptions<RlRunOptions>(command, new(), "rl train");
        command.SetAction(async (parse, token) =>
        {
            var o = options.Bind(parse);
            var progress = new NamedRunProgress(x =>
            {
                var p = x.Point;
                if (p.Name == RlTrainJob.Metrics.RewardMean)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{x.Run,-7} step {p.Step + 1,3}/{o.Job.Steps}  reward {p.Value:F3}"));
                else if (p.Name == RlTrainJob.Metrics.HeldOutAccuracy)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{x.Run,-7}       held-out accuracy {p.Value:F3}"));
            });
            var results = await RlCompare.RunAsync(o, progress, token);
            foreach (var r in results) Facts.Print(r);
            if (results.Count == 1) Facts.WriteJson(parse.GetValue(json), results[0]);
            else Facts.WriteJson(parse.GetValue(json), results);
            return 0;
        });
        return command;
    }
}
