using System.Text.Json;
using Toolkit.Data;
using Toolkit.Paro;
using Toolkit.Runs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Paro;

public sealed class ParoTrainJobTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-paro-runs-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    [Fact]
    public async Task InProcess_TinyGpt_LossFalls_AndTheRunFolderHoldsEverything()
    {
        var progress = new List<MetricPoint>();
        var result = await ParoTrainJob.RunAsync(new ParoTrainOptions { Strategy = "IIG", Steps = 25, Accumulation = 2, RunsDirectory = _runs },
            new SyncProgress(progress));
        Assert.InRange(result.Steps[0].Loss, 5.3, 5.8);                     // about ln 256 at initialisation
        Assert.True(result.Steps[^1].Loss < result.Steps[0].Loss - 1.5, $"loss {result.Steps[0].Loss} -> {result.Steps[^1].Loss}");
        Assert.Equal(4, result.Memory.Count);
        Assert.True(result.Throughput.TokensPerSecond > 0);
        foreach (var file in new[] { "config.json", "metrics.jsonl", "log.txt", "result.json", "report.html" })
            Assert.True(File.Exists(Path.Combine(result.RunPath, file)), file);
        Assert.Equal(25 * 4, progress.Count(p => p.Name == "loss"));
        Assert.Equal(result, ParoTrainJob.ReadResult(result.RunPath) with { Steps = result.Steps, Memory = result.Memory });
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(result.RunPath, ParoTrainJob.ResultFile)));
        foreach (var key in new[] { "strategy", "ranks", "groupSize", "accumulation", "steps", "memory", "comm", "throughput" })
            Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        Assert.True(json.RootElement.GetProperty("comm").TryGetProperty("interBytesPerStep", out _));
        Assert.True(json.RootElement.GetProperty("memory")[0].TryGetProperty("peakBytes", out _));
    }

    [Fact]
    public async Task Mpi_LaunchesFourProcesses_AndMatchesTheInProcessRun()
    {
        var options = new ParoTrainOptions { Strategy = "NGG", Steps = 4, RunsDirectory = _runs };
        var inProcess = await ParoTrainJob.RunAsync(options);
        Environment.SetEnvironmentVariable(Toolkit.Runtime.ToolkitCli.OverrideVariable, Repository.CliDll);
        var mpi = await ParoTrainJob.RunAsync(options with { Launcher = Launcher.Mpi });
        Assert.Equal(inProcess.Comm, mpi.Comm);
        Assert.Equal(inProcess.Memory, mpi.Memory);
        for (var s = 0; s < options.Steps; s++)
            Assert.Equal(inProcess.Steps[s].Loss, mpi.Steps[s].Loss, 5);
        Assert.Equal(4, Directory.GetFiles(mpi.RunPath, "metrics.rank-*.jsonl").Length);
    }

    [Fact]
    public void Options_AreValidatedBeforeWork()
    {
        Assert.Throws<ShardingPlanException>(() => new ParoTrainOptions { Strategy = "GNN" }.Validate());
        Assert.Contains("must divide", Assert.Throws<ArgumentOutOfRangeException>(() => new ParoTrainOptions { Ranks = 4, GroupSize = 3 }.Validate()).Message);
        Assert.Contains("tiny, small, medium, base", Assert.Throws<ArgumentException>(() => new ParoTrainOptions { Model = "huge" }.Validate()).Message);
        Assert.Throws<FileNotFoundException>(() => new ParoTrainOptions { DataPath = "/no/such/file.txt" }.Validate());
    }

    [Fact]
    public void Corpus_RegeneratesTheCommittedFile_ByteForByte()
    {
        var committed = File.ReadAllText(Path.Combine(Repository.Root, "datasets", "synthetic-stories.txt"));
        Assert.Equal(committed, SyntheticCorpus.Generate(1, 2000));
        Assert.Equal(committed, SyntheticCorpus.Embedded());
    }

    private sealed class SyncProgress(List<MetricPoint> sink) : IProgress<MetricPoint>
    {
        public void Report(MetricPoint value) { lock (sink) sink.Add(value); }
    }
}
