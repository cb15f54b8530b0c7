using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    private ParoTrainOptions Options(string strategy) => new() { Sharding = new() { Strategy = strategy }, Steps = 1, Launch = new() { RunsDirectory = _runs } };

    [Theory]
    [InlineData("IIG", ParoPrecision.Fp32)]
    [InlineData("NNG", ParoPrecision.Bf16)]
    public async Task Resume_ContinuesTheLossTrajectoryExactly(string strategy, ParoPrecision precision)
    {
        var options = new ParoTrainOptions { Sharding = new() { Strategy = strategy, Precision = precision, Accumulation = 2 }, Launch = new() { RunsDirectory = _runs } };
        var uninterrupted = await ParoTrainJob.RunAsync(options with { Steps = 6, Checkpoint = new() { Every = 3 } });
        var checkpoint = Path.Combine(uninterrupted.RunPath, "checkpoints", "step-3");
        var manifest = CheckpointManifest.Read(checkpoint);
        Assert.Equal(3, manifest.Step);
        Assert.Equal(4, manifest.Shards.Count);

        var resumed = await ParoTrainJob.RunAsync(options with { Steps = 3, Checkpoint = new() { ResumeFrom = checkpoint } });
        Assert.Equal([3, 4, 5], resumed.Steps.Select(s => s.Step));
        for (var i = 0; i < 3; i++)
            Assert.Equal(uninterrupted.Steps[3 + i].Loss, resumed.Steps[i].Loss);
    }

    [Fact]
    public async Task Resume_UnderAnotherStrategy_IsRefusedWithTheReason()
    {
        var first = await ParoTrainJob.RunAsync(Options("NIG") with { Checkpoint = new() { Every = 1 } });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => ParoTrainJob.RunAsync(Options("GGG") with { Checkpoint = new() { ResumeFrom = checkpoint } }));
        Assert.Contains("written by NIG", e.Message);
        Assert.Contains("re-sharding is not supported", e.Message);
    }

    [Fact]
    public async Task CorruptShard_IsDetectedByItsHash()
    {
        var first = await ParoTrainJob.RunAsync(Options("NIG") with { Checkpoint = new() { Every = 1 } });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        var file = Path.Combine(checkpoint, "rank-2.bin");
        var bytes = File.ReadAllBytes(file);
        bytes[10] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => ParoTrainJob.RunAsync(Options("NIG") with { Checkpoint = new() { ResumeFrom = checkpoint } }));
        Assert.Contains("rank-2.bin is corrupt", e.Message);
    }
}
