using Toolkit.Checkpoints;
using Toolkit.Jobs;
using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

/// <summary>
/// --max-restarts: a rank that dies (SIGKILL under mpiexec) or throws (in-process) mid-run restarts every rank from the
/// latest checkpoint, the restart is recorded, and the run ends with the same parameters as an uninterrupted one; with
/// no restarts allowed the same fault fails the run.
/// </summary>
public sealed class RestartTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("toolkit-restarts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Runs(string name) => Directory.CreateDirectory(Path.Combine(_root, name)).FullName;

    private static ParoTrainOptions Options(string runs, Launcher launcher, int ranks, int maxRestarts) => new()
    {
        Sharding = new() { Strategy = "GGG" }, Steps = 6,
        Launch = new() { RunsDirectory = runs, Launcher = launcher, Ranks = ranks, GroupSize = ranks / 2 },
        Checkpoint = new() { Every = 2, MaxRestarts = maxRestarts },
    };

    private static void Drill(string runs, int rank, int step, bool kill) =>
        File.WriteAllText(Path.Combine(runs, Restarts.DrillFile), $$"""{"rank":{{rank}},"step":{{step}},"kill":{{
            (kill ? "true" : "false")}}}""");

    [Theory]
    [InlineData(Launcher.InProcess, 4, false)]
    [InlineData(Launcher.Mpi, 2, true)]
    public async Task ARankLostMidRun_RestartsFromTheLatestCheckpoint_AndEndsWithTheUninterruptedParameters(
        Launcher launcher, int ranks, bool kill)
    {
        var uninterrupted = await ParoTrainJob.RunAsync(Options(Runs("clean"), launcher, ranks, 0));
        var faulty = Runs("faulty");
        Drill(faulty, rank: 1, step: 5, kill);
        var restarted = await ParoTrainJob.RunAsync(Options(faulty, launcher, ranks, maxRestarts: 2));

        var restart = Assert.Single(Restarts.Read(restarted.RunPath));
        Assert.Equal((1, 4), (restart.Attempt, restart.Step));
        Assert.Contains(kill ? "exited with code" : "drill: rank 1 fails at step 5", restart.Cause);
        Assert.Contains("restart 1:", File.ReadAllText(Path.Combine(restarted.RunPath, "log.txt")));
        Assert.Equal([4, 5], restarted.Steps.Select(s => s.Step));
        Assert.Equal(CheckpointManifest.ReadParameters(CheckpointFolders.Final(uninterrupted.RunPath, 6)),
            CheckpointManifest.ReadParameters(CheckpointFolders.Final(restarted.RunPath, 6)));
    }

    [Fact]
    public async Task WithoutRestarts_TheSameFaultFailsTheRun()
    {
        var runs = Runs("no-restarts");
        Drill(runs, rank: 1, step: 5, kill: false);
        await Assert.ThrowsAnyAsync<Exception>(() => ParoTrainJob.RunAsync(Options(runs, Launcher.InProcess, 4, 0)));
    }
}
