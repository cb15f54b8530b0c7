using System.CommandLine;
using System.Globalization;
using Toolkit.Quickstart;
using Toolkit.Runs;

namespace Toolkit.Cli;

/// <summary><c>toolkit quickstart</c>: the embedded-default job (in-process ranks, no MPI) with a terminal progress
/// line and an HTML report.</summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Write the result as JSON to this file." };
        var command = new Command("quickstart",
            "Train a small network data-parallel on in-process ranks; writes runs/<id>/ with metrics and " +
                "report.html.") { json };
        var options = new CliOptions<QuickstartOptions>(command, new(), "quickstart");
        command.SetAction(async (parse, token) =>
        {
            var o = options.Bind(parse);
            var progress = new JobProgress(p =>
            {
                if (p.Rank == 0 && p.Name == MetricNames.Loss && !Console.IsOutputRedirected)
                {
                    var loss = p.Value.ToString("F4", CultureInfo.InvariantCulture);
                    Console.Write($"\rstep {p.Step + 1}/{o.Steps}  loss {loss}   ");
                }
            });
            var result = await QuickstartJob.RunAsync(o, progress, token);
            if (!Console.IsOutputRedirected) Console.WriteLine();
            Facts.Print(result);
            Facts.WriteJson(parse.GetValue(json), result);
            return 0;
        });
        return command;
    }
}
