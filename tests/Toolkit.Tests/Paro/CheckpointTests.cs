using Toolkit.Checkpoints;
using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    private ParoTrainOptions Options(string strategy) => new() { Sharding = new() { Strategy = strategy }, Steps = 1,
        Launch = new() { RunsDirectory = _runs } };

    [Theory]
    [InlineData("IIG", ParoPrecision.Fp32)]
    [InlineData("NNG", ParoPrecision.Bf16)]
    public async Task Resume_ContinuesTheLossTrajectoryExactly(string strategy, ParoPrecision precision)
    {
        var options = new ParoTrainOptions { Sharding = new() { Strategy = strategy, Precision = precision,
            Accumulation = 2 }, Launch = new() { RunsDirectory = _runs } };
        var uninterrupted = await ParoTrainJob.RunAsync(options with { Steps = 6, Checkpoint = new() { Every = 3 } });
        var checkpoint = Path.Combine(uninterrupted.RunPath, "checkpoints", "step-3");
        var manifest = CheckpointManifest.Read(checkpoint);
        Assert.Equal(3, manifest.Step);
        Assert.Equal(4, manifest.Shards.Count);

        var resumed = await ParoTrainJob.RunAsync(options with { Steps = 3,
            Checkpoint = new() { ResumeFrom = checkpoint } });
        Assert.Equal([3, 4, 5], resumed.Steps.Select(s => s.Step));
        for (var i = 0; i < 3; i++)
            Assert.Equal(uninterrupted.Steps[3 + i].Loss, resumed.Steps[i].Loss);
    }

    /// <summary>
    /// Re-sharding: a checkpoint written by ZeRO-3 (GGG) on 4 ranks in groups of 2 resumes under other plans and
    /// continues the uninterrupted run's losses. The global batch is kept (4 ranks x A = 1 or 2 ranks x A = 2: data is
    /// indexed by global micro-batch), so only the summation order differs: relative 1e-5.
    /// </summary>
    [Theory]
    [InlineData("NIG", 4, 2, 1)]
    [InlineData("NNN", 2, 2, 2)]
    [InlineData("IIG", 4, 4, 1)]
    [InlineData("NGG", 2, 1, 2)]
    public async Task Resume_UnderAnotherPlan_ContinuesTheUninterruptedRun(string strategy, int ranks, int groupSize,
        int accumulation)
    {
        var (uninterrupted, checkpoint) = await GggCheckpointAtStep3();
        var resumed = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Sharding = new() { Strategy = strategy, Accumulation = accumulation },
            Launch = new() { RunsDirectory = _runs, Ranks = ranks, GroupSize = groupSize },
            Steps = 3,
            Checkpoint = new() { ResumeFrom = checkpoint },
        });
        Close.Losses(uninterrupted.Steps.Skip(3).ToList(), resumed.Steps);
    }

    /// <summary>
    /// Layer-wise execution keeps one flat buffer per block, but its checkpoint is written in the model's flat order
    /// like any other: a layer-wise GGG checkpoint resumes under whole-model NIG on 4 ranks and NNN on 2 ranks, and a
    /// whole-model checkpoint resumes layer-wise, each continuing the uninterrupted run's losses.
    /// </summary>
    [Theory]
    [InlineData(true, "NIG", false, 4, 1)]
    [InlineData(true, "NNN", false, 2, 2)]
    [InlineData(false, "IGG", true, 4, 1)]
    public async Task Resume_BetweenLayerwiseAndWholeModelExecution_ContinuesTheUninterruptedRun(bool writtenLayerwise,
        string strategy, bool resumedLayerwise, int ranks, int accumulation)
    {
        var (uninterrupted, checkpoint) = await GggCheckpointAtStep3(writtenLayerwise);
        var resumed = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Sharding = new() { Strategy = strategy, Accumulation = accumulation, Layerwise = resumedLayerwise },
            Launch = new() { RunsDirectory = _runs, Ranks = ranks, GroupSize = 2 },
            Steps = 3,
            Checkpoint = new() { ResumeFrom = checkpoint },
        });
        Close.Losses(uninterrupted.Steps.Skip(3).ToList(), resumed.Steps);
    }

    private async Task<(ParoTrainResult Run, string Checkpoint)> GggCheckpointAtStep3(bool layerwise = false)
    {
        var run = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Sharding = new() { Strategy = "GGG", Layerwise = layerwise },
            Launch = new() { RunsDirectory = _runs, Ranks = 4, GroupSize = 2 },
            Steps = 6,
            Checkpoint = new() { Every = 3 },
        });
        return (run, Path.Combine(run.RunPath, "checkpoints", "step-3"));
    }

    [Fact]
    public async Task Resume_UnderMpi_ReadsTheThreadRanksCheckpoint()
    {
        var (uninterrupted, checkpoint) = await GggCheckpointAtStep3();
        var resumed = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Sharding = new() { Strategy = "NIG" },
            Launch = new() { RunsDirectory = _runs, Ranks = 4, GroupSize = 2, Launcher = Toolkit.Jobs.Launcher.Mpi },
            Steps = 3,
            Checkpoint = new() { ResumeFrom = checkpoint },
        });
        Close.Losses(uninterrupted.Steps.Skip(3).ToList(), resumed.Steps);
    }

    /// <summary>Across precisions the values are converted: a bf16 run takes an fp32 checkpoint's parameters as its
    /// master copy, and back.</summary>
    [Fact]
    public async Task Resume_AcrossPrecisions_ConvertsTheValues()
    {
        var fp32 = await ParoTrainJob.RunAsync(Options("IIG") with { Checkpoint = new() { Every = 1 } });
        var fromFp32 = await ParoTrainJob.RunAsync(Options("NIG") with
        {
            Sharding = new() { Strategy = "NIG", Precision = ParoPrecision.Bf16 },
            Checkpoint = new() { Every = 1, ResumeFrom = Path.Combine(fp32.RunPath, "checkpoints", "step-1") },
        });
        var bf16Checkpoint = Path.Combine(fromFp32.RunPath, "checkpoints", "step-2");
        Assert.Equal("bf16", CheckpointManifest.Read(bf16Checkpoint).Precision);
        var back = await ParoTrainJob.RunAsync(Options("GGG") with { Checkpoint = new() { ResumeFrom
            = bf16Checkpoint } });
        Assert.Equal([2], back.Steps.Select(s => s.Step));
        Assert.True(double.IsFinite(back.Steps[0].Loss));
        // same model, bf16 vs fp32 numerics
        Close.Relative(fromFp32.Steps[0].Loss, back.Steps[0].Loss, 0.05, "loss one step apart");
    }

    [Fact]
    public async Task Resume_WithAnotherModel_IsRefusedWithTheReason()
    {
        var first = await ParoTrainJob.RunAsync(Options("NIG") with { Checkpoint = new() { Every = 1 } });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => ParoTrainJob.RunAsync(Options("GGG") with
        {
            Model = new() { Name = "small" },
            Checkpoint = new() { ResumeFrom = checkpoint },
        }));
        Assert.Contains("parameters; this job's model has", e.Message);
    }

    /// <summary>Two models of 66 parameters (5-7-3 and 10-6 multilayer perceptrons): the count agrees, the names and
    /// shapes do not.</summary>
    [Fact]
    public void Resume_WithAnotherModelOfTheSameSize_IsRefusedByItsFingerprint()
    {
        Toolkit.Runtime.TorchRuntime.EnsureInitialized();
        var checkpoint = Path.Combine(_runs, "mlp");
        Toolkit.Comm.InProcessCluster.Run(2, 1, comm =>
        {
            using var model = TorchSharp.torch.nn.Sequential(TorchSharp.torch.nn.Linear(5, 7),
                TorchSharp.torch.nn.Tanh(), TorchSharp.torch.nn.Linear(7, 3));
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse("NIG"), 1), comm);
            trainer.SaveCheckpoint(checkpoint);
            return 0;
        });
        Assert.NotNull(CheckpointManifest.Read(checkpoint).ModelFingerprint);
        var errors = Toolkit.Comm.InProcessCluster.Run(2, 1, comm =>
        {
            using var other = TorchSharp.torch.nn.Sequential(TorchSharp.torch.nn.Linear(10, 6));
            using var trainer = ShardedTrainer.Create(other, new ShardingPlan(ShardingStrategy.Parse("NIG"), 1), comm);
            return Assert.Throws<ArgumentException>(() => trainer.LoadCheckpoint(checkpoint)).Message;
        });
        Assert.All(errors, m => Assert.Contains("another model of the same size", m));
    }

    [Fact]
    public async Task MissingRankFile_IsReported()
    {
        var first = await ParoTrainJob.RunAsync(Options("GGG") with { Checkpoint = new() { Every = 1 } });
        var checkpoint = Path.Combine(first.RunPath, "checkpoints", "step-1");
        File.Delete(Path.Combine(checkpoint, "rank-1.bin"));
        var e = await Assert.ThrowsAsync<InvalidDataException>(()
            => ParoTrainJob.RunAsync(Options("NNN") with { Checkpoint = new() { ResumeFrom = checkpoint } }));
        Assert.Contains("rank-1.bin is missing", e.Message);
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
        var e = await Assert.ThrowsAsync<InvalidDataException>(()
            => ParoTrainJob.RunAsync(Options("NIG") with { Checkpoint = new() { ResumeFrom = checkpoint } }));
        Assert.Contains("rank-2.bin is corrupt", e.Message);
    }
}
