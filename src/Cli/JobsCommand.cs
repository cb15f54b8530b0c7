using System.CommandLine;
using Toolkit.Jobs;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit jobs</c>: the toolkit's jobs, read from their run folders (Slurm jobs asked about with
/// squeue/scontrol/sacct).</summary>
internal static class JobsCommand
{
    public static Command Create()
    {
        var runs = new Option<string>("--runs-dir") { Description
            = "Folder that holds run folders ($TOOLKIT_RUNS_DIR, else runs).",
                DefaultValueFactory = _ => RunDirectory.DefaultRoot };
        var last = new Option<int>("--last") { Description = "Show this many of the newest runs (0: all).",
            DefaultValueFactory = _ => 20 };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the list as JSON to this file." };
        var command = new Command("jobs",
            "List the toolkit's jobs from their run folders: kind, launcher, state (for Slurm jobs, the " +
                "scheduler's), run folder. Re-plot one with #!toolkit show --run PATH.") { runs, last, json };
        command.SetAction(parse =>
        {
            var shown = JobList.Read(parse.GetValue(runs)!, Math.Max(0, parse.GetValue(last)));
            if (shown.Count == 0)
            {
                Console.WriteLine($"No runs in {Path.GetFullPath(parse.GetValue(runs)!)}.");
                return 0;
            }
            var width = shown.Max(j => j.Id.Length);
            Console.WriteLine($"{"run".PadRight(width)}  {"kind",-18} {"launcher",-9} {"slurm job",-10} state");
            foreach (var j in shown)
                Console.WriteLine(
                    $"{j.Id.PadRight(width)}  {j.Kind,-18} {j.Launcher,-9} {j.SlurmJobId ?? "-",-10} {j.State}");
            Facts.WriteJson(parse.GetValue(json), shown);
            return 0;
        });
        return command;
    }
}
