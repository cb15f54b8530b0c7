using System.Text.Json;
using Toolkit.Data;
using Toolkit.Paro;
using Toolkit.Jobs;
using Toolkit.Runs;
using Toolkit.Runtime;
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
        var result = await ParoTrainJob.RunAsync(new ParoTrainOptions { Sharding = new() { Strategy = "IIG",
            Accumulation = 2 }, Steps = 25, Launch = new() { RunsDirectory = _runs } },
            new SyncProgress(progress));
        Assert.InRange(result.Steps[0].Loss, 5.3, 5.8);                     // about ln 256 at initialisation
        Assert.True(result.Steps[^1].Loss < result.Steps[0].Loss - 1.5,
            $"loss {result.Steps[0].Loss} -> {result.Steps[^1].Loss}");
        Assert.Equal(4, result.Memory.Count);
        Assert.True(result.Throughput.TokensPerSecond > 0);
        foreach (var file in new[] { "config.json", "metrics.jsonl", "log.txt", "result.json", "report.html" })
            Assert.True(File.Exists(Path.Combine(result.RunPath, file)), file);
        Assert.Equal(25 * 4, progress.Count(p => p.Name == "loss"));
        // The whole result survives its JSON round trip, lists included (records compare lists by reference, so compare
        // the JSON).
        var read = ParoTrainJob.ReadResult(result.RunPath);
        Assert.Equal(JsonSerializer.Serialize(result, ToolkitJson.Options), JsonSerializer.Serialize(read,
            ToolkitJson.Options));
        Assert.Equal(result.Steps, read.Steps);
        Assert.Equal(result.Memory, read.Memory);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(result.RunPath, JobHost.ResultFile)));
        foreach (var key in new[] { "strategy", "ranks", "groupSize", "accumulation", "steps", "memory", "comm",
            "throughput" })
            Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        Assert.True(json.RootElement.GetProperty("comm").TryGetProperty("interBytesPerStep", out _));
        Assert.True(json.RootElement.GetProperty("memory")[0].TryGetProperty("peakBytes", out _));
    }

    [Fact]
    public async Task Mpi_LaunchesFourProcesses_AndMatchesTheInProcessRun()
    {
        // No TOOLKIT_CLI: the rank entry point is found next to the running application (the CLI is copied beside the
        // tests).
        Assert.Null(Environment.GetEnvironmentVariable(RankEntryPoint.OverrideVariable));
        var options = new ParoTrainOptions { Sharding = new() { Strategy = "NGG" }, Steps = 4,
            Launch = new() { RunsDirectory = _runs } };
        var inProcess = await ParoTrainJob.RunAsync(options);
        var mpi = await ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher
            = Launcher.Mpi } });
        Assert.Equal(inProcess.Comm, mpi.Comm);
        Assert.Equal(inProcess.Memory, mpi.Memory);
        Close.Losses(inProcess.Steps, mpi.Steps);
        Assert.Equal(4, Directory.GetFiles(mpi.RunPath, "metrics.rank-*.jsonl").Length);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(mpi.RunPath, JobHost.OutcomesFolder), "rank-*.json").Length);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(mpi.RunPath, "config.json")));
        Assert.Equal("paro-train", config.RootElement.GetProperty("kind").GetString());
        Assert.Equal("mpi",
            config.RootElement.GetProperty("options").GetProperty("launch").GetProperty("launcher").GetString());
    }

    [Fact]
    public void Options_AreValidatedBeforeWork()
    {
        Assert.Throws<ShardingPlanException>(()
            => new ParoTrainOptions { Sharding = new() { Strategy = "GNN" } }.Validate());
        Assert.Contains("must divide",
            Assert.Throws<ArgumentOutOfRangeException>(() => new ParoTrainOptions { Launch = new() { Ranks = 4,
                GroupSize = 3 } }.Validate()).Message);
        Assert.Contains("tiny, small, medium, base",
            Assert.Throws<ArgumentOutOfRangeException>(()
                => new ParoTrainOptions { Model = new() { Name = "huge" } }.Validate()).Message);
        Assert.Equal("Path",
            Assert.Throws<ArgumentOutOfRangeException>(()
                => new ParoTrainOptions { Data = new() { Path = "/no/such/file.txt" } }.Validate()).ParamName);
        Assert.Contains("needs --emulate",
            Assert.Throws<ArgumentOutOfRangeException>(()
                => new ParoTrainOptions { Launch = new() { NicsPerNode = 2 } }.Validate()).Message);
        Assert.Contains("must be 1..2", Assert.Throws<ArgumentOutOfRangeException>(() => new ParoTrainOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Emulate = "2x2", NicsPerNode = 3 },
        }.Validate()).Message);
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
