using Toolkit.Jobs;
using Toolkit.Quickstart;

namespace Toolkit.Tests.Paro;

/// <summary>
/// The quickstart's --max-restarts: a rank that dies (SIGKILL under mpiexec) or throws (in-process) mid-run starts
/// every rank again from the beginning (the quickstart keeps no checkpoints), the restart is recorded, and the run ends
/// with the losses of an uninterrupted one; with no restarts allowed the same fault fails the run.
/// </summary>
public sealed class QuickstartRestartTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("toolkit-qs-restarts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private QuickstartOptions Options(string name, Launcher launcher, int maxRestarts, (int Rank, bool Kill)? drill)
    {
        var runs = Directory.CreateDirectory(Path.Combine(_root, name)).FullName;
        if (drill is { } d) File.WriteAllText(Path.Combine(runs, Restarts.DrillFile),
            $$"""{"rank":{{d.Rank}},"step":30,"kill":{{(d.Kill ? "true" : "false")}}}""");
        return new()
        {
            Steps = 40, MaxRestarts = maxRestarts,
            Launch = new() { RunsDirectory = runs, Launcher = launcher, Ranks = 2, GroupSize = 1 },
        };
    }

    [Theory]
    [InlineData(Launcher.InProcess, false)]
    [InlineData(Launcher.Mpi, true)]
    public async Task ARankLostMidRun_StartsOver_AndEndsWithTheUninterruptedLosses(Launcher launcher, bool kill)
    {
        var uninterrupted = await QuickstartJob.RunAsync(Options($"clean-{launcher}", launcher, 0, null));
        var restarted = await QuickstartJob.RunAsync(Options($"faulty-{launcher}", launcher, 1, (1, kill)));
        var restart = Assert.Single(Restarts.Read(restarted.RunPath));
        Assert.Equal((1, 0), (restart.Attempt, restart.Step));
        Assert.Contains(kill ? "exited with code" : "drill: rank 1 fails at step 30", restart.Cause);
        Assert.Contains("starts again from the beginning", File.ReadAllText(Path.Combine(restarted.RunPath,
            "log.txt")));
        Assert.Equal(uninterrupted.Loss, restarted.Loss);
        Assert.Equal(0, restarted.ReplicaDivergence);
    }

    [Fact]
    public async Task WithoutRestarts_TheSameFaultFailsTheRun() =>
        await Assert.ThrowsAnyAsync<Exception>(() => QuickstartJob.RunAsync(Options("no-restarts",
            Launcher.InProcess, 0, (1, false))));
}
