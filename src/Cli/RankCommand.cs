using System.CommandLine;
using Toolkit.Jobs;

namespace Toolkit.Cli;

/// <summary>
/// <c>toolkit rank --run DIR</c>: the one entry point mpiexec and srun start for every job's ranks; the run folder's
/// config.json says which job.
/// </summary>
internal static class RankCommand
{
    public static Command Create()
    {
        var command = new Command(ChildCommands.Rank[0],
            "One rank of a multi-process job (started by mpiexec or srun).")
        {
            Hidden = true,
        };
        var options = new CliOptions<RankProcessOptions>(command, new(), "rank");
        command.SetAction((parse, cancel) =>
            Task.FromResult(JobHost.RunRankProcess(Path.GetFullPath(options.Bind(parse).Run!), cancel)));
        return command;
    }
}
