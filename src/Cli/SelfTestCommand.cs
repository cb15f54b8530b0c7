using System.CommandLine;
using Toolkit.Comm;

namespace Toolkit.Cli;

/// <summary>
/// <c>toolkit selftest collectives</c>: runs the collective probe on MPI processes (under
/// <c>mpiexec</c>) and writes each rank's results; the test suite checks them against a reference.
/// </summary>
internal static class SelfTestCommand
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for rank-<r>.json results.", Required = true };
        var algorithm = new Option<CollectiveAlgorithm>("--algorithm") { Description = "ring or native.", DefaultValueFactory = _ => CollectiveAlgorithm.Ring };
        var groupSize = new Option<int?>("--group-size") { Description = "Ranks per group (default: ranks per host)." };
        var collectives = new Command("collectives", "Run the collective probe on MPI ranks.") { output, algorithm, groupSize };
        collectives.SetAction(parse =>
        {
            using var comm = MpiCluster.InitializeWorld(parse.GetValue(groupSize));
            comm.Algorithm = parse.GetValue(algorithm);
            CollectiveProbe.Write(parse.GetValue(output)!.FullName, comm.Rank, CollectiveProbe.Run(comm));
            comm.Barrier();
            return 0;
        });
        return new Command("selftest", "Checks run by the test suite across MPI processes.") { Hidden = true, Subcommands = { collectives } };
    }
}
