using System.CommandLine;
using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Paro;

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
        var algorithm = new Option<string>("--algorithm") { Description = "native, ring, hierarchical or ho-ring.", DefaultValueFactory = _ => "ring" };
        var groupSize = new Option<int?>("--group-size") { Description = "Ranks per group (default: ranks per host)." };
        var collectives = new Command("collectives", "Run the collective probe on MPI ranks.") { output, algorithm, groupSize };
        collectives.SetAction(parse =>
        {
            using var comm = MpiCluster.InitializeWorld(parse.GetValue(groupSize));
            comm.Algorithm = CollectiveAlgorithms.Parse(parse.GetValue(algorithm)!);
            CollectiveProbe.Write(parse.GetValue(output)!.FullName, comm.Rank, CollectiveProbe.Run(comm));
            comm.Barrier();
            return 0;
        });
        return new Command("selftest", "Checks run by the test suite across MPI processes.") { Hidden = true, Subcommands = { collectives, Paro() } };
    }

    private static Command Paro()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for rank-<r>.json results.", Required = true };
        var groupSize = new Option<int>("--group-size") { Description = "Ranks per group.", DefaultValueFactory = _ => 2 };
        var accumulation = new Option<int>("--accumulation") { Description = "Micro-steps per step.", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 3 };
        var command = new Command("paro", "Train the exactness probe under every trained strategy on MPI ranks.") { output, groupSize, accumulation, steps };
        command.SetAction(parse =>
        {
            Toolkit.Runtime.TorchRuntime.EnsureInitialized();
            using var comm = MpiCluster.InitializeWorld(parse.GetValue(groupSize));
            var results = ShardingStrategy.Trained.ToDictionary(s => s.Code,
                s => ExactnessProbe.Train(comm, s.Code, parse.GetValue(groupSize), parse.GetValue(accumulation), parse.GetValue(steps)));
            var dir = parse.GetValue(output)!.FullName;
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, $"rank-{comm.Rank}.json"), JsonSerializer.Serialize(results));
            comm.Barrier();
            return 0;
        });
        return command;
    }
}
