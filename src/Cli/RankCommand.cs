using System.CommandLine;
using Toolkit.Jobs;

namespace Toolkit.Cli;

/// <summary><c>toolkit rank --run DIR</c>: the one entry point mpiexec starts for every job's ranks; the run folder's config.json says which job.</summary>
internal static class RankCommand
{
    public static Command Create()
    {
        var run = new Option<DirectoryInfo>("--run") { Description = "Run folder whose config.json names the job kind and holds its options.", Required = true };
        var command = new Command("rank", "One rank of a multi-process job (started by mpiexec).") { Hidden = true, Options = { run } };
        command.SetAction(parse =>
        {
            JobHost.RunRankProcess(parse.GetValue(run)!.FullName);
            return 0;
        });
        return command;
    }
}
