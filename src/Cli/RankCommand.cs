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

    /// <summary><c>toolkit rank-restart --run DIR --cause TEXT</c>: exit 0 when the run was restarted from its
    /// latest checkpoint, 1 when its --max-restarts allows no more (a Slurm batch script's loop ends then).</summary>
    public static Command CreateRestart()
    {
        var command = new Command(ChildCommands.RankRestart[0],
            "Restarts a training run from its latest checkpoint between Slurm job steps.")
        {
            Hidden = true,
        };
        var options = new CliOptions<RankRestartOptions>(command, new(), "rank-restart");
        command.SetAction(parse =>
        {
            var o = options.Bind(parse);
            if (JobHost.RestartInAllocation(Path.GetFullPath(o.Run!), o.Cause)) return 0;
            Console.Error.WriteLine($"{o.Run}: no restart left (--max-restarts), or its job does not restart");
            return 1;
        });
        return command;
    }
}
