using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    [Theory]
    [InlineData("IIG", ParoPrecision.Fp32)]
    [InlineData("NNG", ParoPrecision.Bf16)]
    public async Task Resume_ContinuesTheLossTrajectoryExactly(string strategy, ParoPrecision precision)
    {
        var options = new ParoTrainOptions { Strategy = strategy, Precision = precision, Accumulation = 2, RunsDirectory = _runs };
        var uninterrupted = await ParoTrainJob.RunAsync(options with { Steps = 6, CheckpointEvery = 3 });
        var checkpoint = Path.Combine(uninterrupted.RunPath, "checkpoints", "step-3");
        var manifest = CheckpointManifest.Read(checkpoint);
        Assert.Equal(3, manifest.Step);
        Assert.Equal(4, manifest.Shards.Count);

        var resumed = await ParoTrainJob.RunAsync(options with { Steps = 3, ResumeFrom = checkpoint });
        Assert.Equal([3, 4, 5], resumed.Steps.Select(s => s.Step));
        for (var i = 0; i < 3; i++)
            Assert.Equal(uninterrupted.Steps[3 + i].Loss, resumed.Steps[i].Loss);
    }

    [Fact]
    public async Task Resume_UnderAnotherStrategy_IsRefusedWithTheReason()
    {
        var first = await ParoTrainJob.RunAsync(new ParoTrainOptions { Strategy = "NIG", Steps = 1, CheckpointEvery = 1, RunsDirectory = _runs });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => ParoTrainJob.RunAsync(new ParoTrainOptions { Strategy = "GGG", Steps = 1, ResumeFrom = checkpoint, RunsDirectory = _runs }));
        Assert.Contains("written by NIG", e.Message);
        Assert.Contains("re-sharding is not supported", e.Message);
    }

    [Fact]
    public async Task CorruptShard_IsDetectedByItsHash()
    {
        var first = await ParoTrainJob.RunAsync(new ParoTrainOptions { Strategy = "NIG", Steps = 1, CheckpointEvery = 1, RunsDirectory = _runs });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        var file = Path.Combine(checkpoint, "rank-2.bin");
        var bytes = File.ReadAllBytes(file);
        bytes[10] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => ParoTrainJob.RunAsync(new ParoTrainOptions { Strategy = "NIG", Steps = 1, ResumeFrom = checkpoint, RunsDirectory = _runs }));
        Assert.Contains("rank-2.bin is corrupt", e.Message);
    }
}
