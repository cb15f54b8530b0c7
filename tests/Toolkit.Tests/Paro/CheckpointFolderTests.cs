using Toolkit.Checkpoints;
using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Checkpoints appear whole (written to a staging folder, renamed into place), only the newest --keep-checkpoints stay,
/// and a run folder resumes from its newest intact checkpoint: a damaged latest one is skipped with a warning and the
/// run continues exactly as the uninterrupted one from the one before.
/// </summary>
public sealed class CheckpointFolderTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-ckpt-folders-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    [Fact]
    public async Task TheNewestCheckpointsAreKept_AndADamagedLatestFallsBackToThePrevious()
    {
        var options = new ParoTrainOptions { Sharding = new() { Strategy = "GGG" },
            Launch = new() { RunsDirectory = _runs } };
        var uninterrupted = await ParoTrainJob.RunAsync(options with { Steps = 6,
            Checkpoint = new() { Every = 2, Keep = 2 } });
        var folder = Path.Combine(uninterrupted.RunPath, CheckpointFolders.Folder);
        Assert.Equal(["step-4", "step-6"], Directory.GetDirectories(folder).Select(Path.GetFileName).Order());
        Assert.Contains("removed the checkpoint of step 2 (--keep-checkpoints 2)",
            File.ReadAllText(Path.Combine(uninterrupted.RunPath, "log.txt")));

        var damaged = Path.Combine(folder, "step-6", "rank-0.bin");
        File.WriteAllBytes(damaged, File.ReadAllBytes(damaged)[..^8]);   // a write cut short
        var resumed = await ParoTrainJob.RunAsync(options with { Steps = 2,
            Checkpoint = new() { ResumeFrom = uninterrupted.RunPath } });
        Assert.Equal([4, 5], resumed.Steps.Select(s => s.Step));
        for (var i = 0; i < 2; i++) Assert.Equal(uninterrupted.Steps[4 + i].Loss, resumed.Steps[i].Loss);
        var log = File.ReadAllText(Path.Combine(resumed.RunPath, "log.txt"));
        Assert.Contains("warning: the checkpoint of step 6 is damaged", log);
        Assert.Contains("rank-0.bin is truncated", log);

        var nothing = Directory.CreateTempSubdirectory("toolkit-empty-run-").FullName;
        try
        {
            var e = Assert.Throws<ArgumentException>(() => CheckpointFolders.Resolve(nothing));
            Assert.Contains("is neither a checkpoint", e.Message);
        }
        finally { Directory.Delete(nothing); }
    }
}
