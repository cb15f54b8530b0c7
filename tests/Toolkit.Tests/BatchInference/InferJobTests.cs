using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// Whole jobs as users run them: <c>toolkit infer run</c> with local worker processes and the real MiniLM model, the
/// chaos test (SIGKILLed workers and coordinator, resume, output read back), and the CLI's messages for bad input.
/// </summary>
public sealed class InferJobTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-infer-");

    public void Dispose() => _folder.Dispose();

    /// <summary>A job folder written before the Slurm settings became one group keeps them when it is read back
    /// (resume).</summary>
    [Fact]
    public void ReadSpec_OfAnOlderFolder_MovesTheSlurmSettingsIntoTheirGroup()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder.Path, "old-job")).FullName;
        File.WriteAllText(Path.Combine(folder, InferLayout.StateFile), "");
        File.WriteAllText(Path.Combine(folder, "config.json"),
            """
            {"kind":"infer","options":{"input":"in.jsonl","launcher":"slurm","ranks":4,"nodes":2,"partition":"debug",
            "time":"1:00:00","account":null,"slurmArgs":"--qos=low"}}
            """);
        var spec = InferJob.ReadSpec(folder);
        var slurm = spec.Launch.Slurm;
        Assert.Equal(("debug", "1:00:00", null, "--qos=low"), (slurm.Partition, slurm.Time, slurm.Account,
            slurm.SlurmArgs));
        Assert.Equal((Launcher.Slurm, 4, 2), (spec.Launch.Launcher, spec.Launch.Ranks, spec.Launch.Nodes));
        Assert.Equal((2, 2), (spec.RankLaunch.EffectiveNodes, spec.RankLaunch.EffectiveRanksPerNode));
    }

    /// <summary>
    /// A local job's folder written before the launch settings became <see cref="LaunchOptions"/> (top-level launcher,
    /// ranks, nodes = 1, runsDirectory) reads back as the same job, and its spec still passes the checks: ranks are
    /// the processes of mpi and slurm, and the other launchers leave them be (a job moved from mpi to local resumes).
    /// </summary>
    [Fact]
    public void ReadSpec_OfAnOlderLocalFolder_MovesTheLaunchSettingsIntoTheLaunchGroup()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder.Path, "old-local")).FullName;
        var input = Inputs.Jsonl(_folder.Path, 3);
        File.WriteAllText(Path.Combine(folder, InferLayout.StateFile), "");
        var options = $"\"input\":{JsonSerializer.Serialize(input)},\"launcher\":\"local\",\"ranks\":5,\"nodes\":1," +
            "\"emulate\":null,\"interBandwidth\":\"1gbit\",\"runsDirectory\":\"/data/runs\",\"workers\":4";
        File.WriteAllText(Path.Combine(folder, "config.json"), $"{{\"kind\":\"infer\",\"options\":{{{options}}}}}");
        var spec = InferJob.ReadSpec(folder);
        Assert.Equal((Launcher.Local, 5, null, "/data/runs", 4),
            (spec.Launch.Launcher, spec.Launch.Ranks, spec.Launch.Nodes, spec.Launch.RunsDirectory,
                spec.Scheduling.Workers));
        spec.Check();
    }

    /// <summary>
    /// A spec written before the settings became the data, models, scheduling and service groups (a job folder, or a
    /// <c>--spec</c> file) reads back with every setting in its group, the model included.
    /// </summary>
    [Fact]
    public void ReadSpec_OfAFlatSpec_MovesEverySettingIntoItsGroup()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder.Path, "flat")).FullName;
        File.WriteAllText(Path.Combine(folder, InferLayout.StateFile), "");
        var flat = """
            {"input":"in.csv","format":"csv","outputFormat":"parquet","idField":"key","textField":"body",
            "pipeline":"score","gptModel":"tiny","maxTokens":64,"batchSize":8,"replicas":2,"threads":3,
            "shardSize":7,"shardSeconds":0,"retries":5,"leaseSeconds":9,"workers":3,"minWorkers":2,"maxWorkers":4,
            "bind":"0.0.0.0","port":5000,"token":"t0k","jobName":"flat"}
            """;
        File.WriteAllText(Path.Combine(folder, "config.json"), $"{{\"kind\":\"infer\",\"options\":{flat}}}");
        var specFile = Path.Combine(_folder.Path, "flat.json");
        File.WriteAllText(specFile, flat);
        foreach (var spec in new[] { InferJob.ReadSpec(folder),
            Toolkit.Options.OptionBinder.ReadConfig<InferJobOptions>(specFile, InferJobOptions.MigrateJson) })
        {
            Assert.Equal(new InferDataOptions { Input = "in.csv", Format = InputFormat.Csv,
                OutputFormat = OutputFormat.Parquet, IdField = "key", TextField = "body" }, spec.Data);
            Assert.Equal((InferPipeline.Score, "tiny", 64, 8, 2, 3), (spec.Models.Pipeline, spec.Models.Model.Name,
                spec.Models.MaxTokens, spec.Models.BatchSize, spec.Models.Replicas, spec.Models.Threads));
            Assert.Equal(new InferSchedulingOptions { ShardSize = 7, ShardSeconds = 0, Retries = 5, LeaseSeconds = 9,
                Workers = 3, MinWorkers = 2, MaxWorkers = 4 }, spec.Scheduling);
            // a token an older config held is not read: tokens live in the job folder's token file only
            Assert.Equal(new InferServiceOptions { Bind = "0.0.0.0", Port = 5000 }, spec.Service);
            Assert.Equal("flat", spec.JobName);
        }
    }

    /// <summary>A job's command line built from the declarations binds back to the same job.</summary>
    [Fact]
    public void ChildCommandLine_BindsBackToTheSameOptions()
    {
        var job = new InferJobOptions
        {
            Data = new() { Input = "in.jsonl" },
            Models = new() { Stages = "emb=embed*2,topic=classify(emb)", Labels = "a,b",
                Model = new() { Name = "tiny" }, Sampling = new() { Temperature = 0 } },
            Scheduling = new() { Workers = 5, LeaseSeconds = 2.5 },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.External, RunsDirectory = "/data/runs" },
        };
        var arguments = ChildCommands.Of(ChildCommands.InferRun, job);
        Assert.Equal(["infer", "run"], arguments.Take(2));
        Assert.Contains("--lease-seconds", arguments);
        Assert.DoesNotContain("--shard-size", arguments);   // defaults are left to the child's own defaults
        var pairs = new List<KeyValuePair<string, string?>>();
        for (var i = 2; i < arguments.Count; i += 2) pairs.Add(new(arguments[i], arguments[i + 1]));
        var bound = Toolkit.Options.OptionBinder.Bind(new InferJobOptions(), pairs, "infer run");
        Assert.Equal(JsonSerializer.Serialize(job, Toolkit.Runtime.ToolkitJson.Options),
            JsonSerializer.Serialize(bound, Toolkit.Runtime.ToolkitJson.Options));
    }

    [Fact]
    public void Cli_InferRun_EmbedsWithLocalWorkerProcesses_ExactlyOnce_AndQuarantinesBadRows()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 400, seed: 3, badEvery: 100);
        var (result, output) = InferCli.Run(_folder.Path, ["--input", input, "--runs-dir", _folder.Path,
            "--workers", "2", "--shard-size", "100"], TimeSpan.FromMinutes(3));
        Assert.Equal(("completed", 396L, 4L), (result.State, result.OutputRecords, result.Quarantined));
        Assert.Equal(result.Shards, result.ShardsDone);
        // 4 laid out; the last may be split to the workers' share
        Assert.InRange(result.ShardsDone, 4, 8);
        Assert.Equal(2, result.WorkersStarted);
        Assert.Equal("embed", result.Bottleneck);
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var texts = File.ReadLines(input).Where(l => l.StartsWith('{') && l.Contains("\"text\":\"")).Select(l
            => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty("id").GetString()!, e => e.GetProperty("text").GetString()!);
        var embeddings = InferOutput.Rows(result.JobFolder).ToDictionary(r => r.GetProperty("id").GetString()!,
            r => r.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray());
        Assert.All(embeddings.Values, e => Assert.Equal(1.0, Math.Sqrt(e.Sum(v => (double)v * v)), 3));
        Assert.All(embeddings.Values, e => Assert.Equal(MiniLmEmbedding.Dimensions, e.Length));
        // The same text gives the same embedding whichever worker and batch it fell into.
        var duplicates = texts.GroupBy(t => t.Value).Where(g => g.Count() > 1).Select(g => g.Select(x
            => x.Key).ToList()).Take(5).ToList();
        Assert.NotEmpty(duplicates);
        foreach (var ids in duplicates)
            Assert.True(Cosine(embeddings[ids[0]], embeddings[ids[1]]) > 0.9999, $"{ids[0]} and {ids[1]} share a text");
        Assert.Contains("bottleneck", output);
        Assert.True(File.Exists(Path.Combine(result.JobFolder, "metrics.jsonl")));
    }

    /// <summary>Workers and the coordinator SIGKILLed, and records that crash a worker, give NaN or hang the model:
    /// every record exactly once, each faulty one quarantined.</summary>
    [Fact]
    public async Task Chaos_KilledWorkersAndCoordinator_AndFaultyRecords_EveryRecordExactlyOnce()
    {
        var result = await InferChaos.RunAsync(new ChaosOptions
        {
            Records = 1200, ShardSize = 40, Kills = 3, CoordinatorKills = 1, LeaseSeconds = 3, Poison = 1, Nan = 1,
                Stalls = 1, StallSeconds = 6, RunsDirectory = _folder.Path,
        });
        Assert.True(result.Check.ExactlyOnce, string.Join('\n', result.Events));
        Assert.Equal((3, 1, 1), (result.WorkersKilled, result.CoordinatorsKilled, result.Resumes));
        Assert.Equal(["crash", "nan", "stall"], result.Faults.Select(f => f.Kind));
        Assert.All(result.Faults, f => Assert.True(f.Quarantined, $"{f}\n{string.Join('\n', result.Events)}"));
        Assert.Equal((1196L, 4L), (result.Check.Rows, result.Check.Quarantined));   // and the malformed record
        Assert.True(result.ShardsRetried > 0, "killing workers mid-shard must have sent shards back to the queue:\n" +
            string.Join('\n', result.Events));
    }

    [Theory]
    [InlineData("", "an input file is required")]
    [InlineData("--input nowhere.jsonl", "the input file 'nowhere.jsonl' does not exist")]
    [InlineData("--input {input} --workers 3 --max-workers 2", "--max-workers")]
    [InlineData("--input {input} --max-restarts -1", "--max-restarts")]
    [InlineData("--input {input} --pipeline translate", "--pipeline")]
    [InlineData("--input {input} --bind 0.0.0.0 --launcher external --port 70000", "--port")]
    public void Cli_BadOptions_AreUserErrors_NamingTheOption(string arguments, string expected)
    {
        var input = Inputs.Jsonl(_folder.Path, 5);
        var args = arguments.Replace("{input}", input).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "run", "--runs-dir", _folder.Path,
            .. args], TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        Assert.Contains(expected, output);
        Assert.DoesNotContain("   at ", output);
        Assert.Empty(Directory.GetDirectories(_folder.Path, "infer-*"));
    }

    [Fact]
    public void Cli_ResumeOfAFolderThatIsNotAJob_SaysSo()
    {
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "resume", _folder.Path],
            TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        Assert.Contains("is not a batch-inference job folder", output);
    }

    [Fact]
    public void Cli_AWorkerWithoutItsCoordinator_GivesUpWithAClearMessage()
    {
        var token = Path.Combine(_folder.Path, "token");
        File.WriteAllText(token, "t0ken");
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "worker", "--coordinator",
            "http://127.0.0.1:1", "--grace", "1", "--token-file", token], TimeSpan.FromMinutes(1));
        Assert.Equal(1, code);
        Assert.Contains("error: the coordinator at http://127.0.0.1:1 could not be reached for 1 s", output);
        Assert.DoesNotContain("   at ", output);
    }

    /// <summary>The token never goes on a command line: a worker without a token file or the environment variable
    /// is told where to find it.</summary>
    [Fact]
    public void Cli_AWorkerWithoutAToken_IsToldWhereToFindIt()
    {
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "worker", "--coordinator",
            "http://127.0.0.1:1", "--grace", "1"], TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        Assert.Contains("--token-file JOB_FOLDER/token, or set TOOLKIT_INFER_TOKEN", output);
        (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "worker", "--coordinator",
            "http://127.0.0.1:1", "--token", "s3cret"], TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
    }

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();
}

/// <summary>
/// Batch inference beyond one process tree: mpiexec starts the coordinator as rank 0 and workers on the other ranks; on
/// the emulated two-node cluster (network namespaces, shaped links; needs root, as CI runs) the workers on the second
/// node reach the coordinator over the emulated network.
/// </summary>
[Collection(EmulatedClusterCollection.Name)]
public sealed class InferMpiTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-infer-mpi-");

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData(null, 3)]
    [InlineData("2x2", 4)]
    public async Task RanksUnderMpiexec_CompleteTheJobAgainstOneCoordinator(string? emulate, int ranks)
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        // long enough that every rank has joined before the work runs out, however slowly a loaded machine starts them
        SentenceDataset.Write(input, 960, seed: 5, badEvery: 120);
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 40 },
            Launch = InferJobOptions.DefaultLaunch with
            {
                Launcher = Launcher.Mpi, Ranks = ranks, Emulate = emulate, InterBandwidth = "100mbit",
                RunsDirectory = _folder.Path,
            },
        });
        Assert.Equal(("completed", 952L, 8L), (result.State, result.OutputRecords, result.Quarantined));
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var working = result.Workers.Where(w => w.Records > 0).ToList();
        Assert.Equal(ranks - 1, result.Workers.Count);
        Assert.True(working.Count >= 2, string.Join(", ", result.Workers));
        // The job host started them with every job's rank entry point.
        Assert.Contains($"rank --run {result.JobFolder}", File.ReadAllText(Path.Combine(result.JobFolder, "log.txt")));
        if (emulate is not null)
        {
            // Workers on both emulated nodes, one coordinator on node0 reached over the emulated network.
            Assert.Contains(result.Workers, w => w.Host == "node0");
            Assert.Contains(result.Workers, w => w.Host == "node1" && w.Records > 0);
        }
        // The ranks reached rank 0 beyond loopback: over TLS, pinning the certificate made for the job.
        var address = Toolkit.Runtime.ToolkitJson.Read<CoordinatorAddress>(Path.Combine(result.JobFolder,
            InferLayout.CoordinatorFile));
        Assert.StartsWith(emulate is null ? "https://" : "https://node0:", address.Address);
        Assert.Equal(64, address.Fingerprint?.Length);
    }
}
