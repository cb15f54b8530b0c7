using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// One coordinator per job folder (a second is refused, a dead one's lock is taken over), and status read from the
/// coordinator's snapshot, never from its SQLite state.
/// </summary>
public sealed class CoordinatorLockTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-lock-");

    public void Dispose() => _folder.Dispose();

    private string LockFile => Path.Combine(_folder.Path, InferLayout.LockFile);

    [Fact]
    public void ASecondCoordinator_IsRefused_UntilTheFirstReleases()
    {
        using (var first = CoordinatorLock.Acquire(_folder.Path))
        {
            var e = Assert.Throws<JobFailedException>(() => CoordinatorLock.Acquire(_folder.Path));
            Assert.Contains($"is coordinated by process {Environment.ProcessId} on {Environment.MachineName}",
                e.Message);
        }
        Assert.False(File.Exists(LockFile));
        using var second = CoordinatorLock.Acquire(_folder.Path);
    }

    [Fact]
    public void ALockLeftByAProcessThatIsGone_IsTakenOver_OneFromAnotherHostOnlyOnceItIsNotRenewed()
    {
        // this process's id, but another start time: the process that took it is gone and the id was reused
        File.WriteAllText(LockFile, JsonSerializer.Serialize(new { host = Environment.MachineName,
            processId = Environment.ProcessId, started = 1, renewed = DateTimeOffset.UtcNow }));
        var lines = new List<string>();
        using (CoordinatorLock.Acquire(_folder.Path, lines.Add))
            Assert.Contains(lines, l => l.Contains("which is gone"));

        // another host's lock: refused while it is renewed, taken over once it is not (its coordinator was killed)
        File.WriteAllText(LockFile, JsonSerializer.Serialize(new { host = "elsewhere", processId = 1, started = 1,
            renewed = DateTimeOffset.UtcNow }));
        var e = Assert.Throws<JobFailedException>(() => CoordinatorLock.Acquire(_folder.Path));
        Assert.Contains("coordinated by process 1 on elsewhere, which renewed", e.Message);
        File.WriteAllText(LockFile, JsonSerializer.Serialize(new { host = "elsewhere", processId = 1, started = 1,
            renewed = DateTimeOffset.UtcNow - CoordinatorLock.StaleAfter - TimeSpan.FromSeconds(1) }));
        lines.Clear();
        using (CoordinatorLock.Acquire(_folder.Path, lines.Add))
            Assert.Contains(lines, l => l.Contains("on elsewhere, which has not renewed it"));
    }

    /// <summary>A job's status is its coordinator's snapshot: it reads even when the SQLite file is
    /// unreadable.</summary>
    [Fact]
    public async Task Status_ReadsTheCoordinatorsSnapshot_NotItsDatabase()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 40);
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.InProcess,
                RunsDirectory = _folder.Path },
        });
        Assert.Equal("completed", result.State);
        Assert.False(File.Exists(Path.Combine(result.JobFolder, InferLayout.LockFile)));   // released
        var state = Path.Combine(result.JobFolder, InferLayout.StateFile);
        foreach (var sidecar in new[] { "-wal", "-shm" }) File.Delete(state + sidecar);
        File.WriteAllText(state, "not a database");
        var status = InferJob.Status(result.JobFolder);
        Assert.Equal((40L, 40L, true), (status.Records, status.RecordsDone, status.Finished));
        Assert.Equal(result.Workers.Count, status.Workers.Count);
    }
}
