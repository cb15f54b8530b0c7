using System.Security.Cryptography;
using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The output a finished job leaves for other tools: <c>_SUCCESS</c> and a manifest of every committed part (records,
/// SHA-256), and nothing else under <c>output/</c>: parts no commit names and temporary files go when the job resumes
/// and when it finishes.
/// </summary>
public sealed class OutputContractTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-output-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task AFinishedJob_WritesSuccessAndAManifest_AndAResumeRemovesWhatNoCommitNames()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 120, badEvery: 50);
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 30 },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.InProcess,
                RunsDirectory = _folder.Path },
        });
        var output = Path.Combine(result.JobFolder, InferLayout.OutputFolder);
        Check(result.JobFolder, result);

        // A worker that died mid-write and one whose lease expired left files; the job is resumed.
        File.WriteAllText(Path.Combine(output, ".part-000001-deadbeef.jsonl.deadbeef.tmp"), "{\"id\":");
        File.WriteAllText(Path.Combine(output, "part-000001-deadbeef.jsonl"), "{\"id\":\"r00030\"}\n");
        File.Delete(Path.Combine(output, OutputContract.SuccessFile));
        var resumed = await InferJob.ResumeAsync(result.JobFolder);
        Check(result.JobFolder, resumed);
        Assert.Contains("removed 2 part or temporary file(s)", File.ReadAllText(Path.Combine(result.JobFolder,
            "log.txt")));
    }

    /// <summary><c>infer retry --quarantined</c> redoes the shards that quarantined records; asked for nothing, it
    /// says what it needs.</summary>
    [Fact]
    public void Cli_Retry_RedoesTheQuarantiningShards_ExactlyOnceStillHolds()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 120, badEvery: 50);
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "run", "--input", input,
            "--runs-dir", _folder.Path, "--launcher", "inproc", "--shard-size", "30"], TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        var folder = Directory.GetDirectories(_folder.Path, "infer-*").Single();
        (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "retry", folder],
            TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        Assert.Contains("say what to retry: --failed, --quarantined or both", output);

        (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "retry", folder, "--quarantined"],
            TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        Assert.Contains("2 shard(s) back to work", output);
        Assert.Contains("60 records already done", output);
        Assert.True(InferOutput.Verify(folder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        Assert.True(File.Exists(Path.Combine(folder, InferLayout.OutputFolder, OutputContract.SuccessFile)));
    }

    /// <summary><c>--output DIR</c>: worker processes write the parts into DIR (the job folder's <c>output/</c> links
    /// to it), where <c>_SUCCESS</c> and the manifest land; a resume finds it; a folder holding files is
    /// refused.</summary>
    [Fact]
    public void Cli_OutputElsewhere_HoldsThePartsAndTheMarkers_ANonEmptyFolderIsRefused()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 120, badEvery: 50);
        var elsewhere = Path.Combine(_folder.Path, "dataset", "embeddings");
        string[] run = [Repository.CliDll, "infer", "run", "--input", input, "--runs-dir", _folder.Path, "--workers",
            "2", "--shard-size", "30", "--output", elsewhere];
        var (code, output) = Repository.Run("dotnet", run, TimeSpan.FromMinutes(3));
        Assert.True(code == 0, output);
        var folder = Directory.GetDirectories(_folder.Path, "infer-*").Single();
        Assert.Equal(elsewhere, new DirectoryInfo(Path.Combine(folder, InferLayout.OutputFolder)).LinkTarget);
        Check(folder, InferCli.Read(Path.Combine(folder, "result.json")));
        Assert.Equal(4, Directory.GetFiles(elsewhere, "part-*").Length);
        Assert.True(File.Exists(Path.Combine(elsewhere, OutputContract.ManifestFile)));

        File.Delete(Path.Combine(elsewhere, OutputContract.SuccessFile));
        (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "resume", folder],
            TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        Assert.True(File.Exists(Path.Combine(elsewhere, OutputContract.SuccessFile)));

        (code, output) = Repository.Run("dotnet", run, TimeSpan.FromMinutes(2));
        Assert.Equal(2, code);
        Assert.Contains($"error: --output: {elsewhere} holds files already (", output);
        Assert.Contains("name a new or empty folder", output);
        Assert.Single(Directory.GetDirectories(_folder.Path, "infer-*"));   // no job folder for the refused job
    }

    /// <summary>A coordinator that has just adopted its predecessor's leases keeps the files of shards still leased
    /// (their workers may be writing them) and removes the rest.</summary>
    [Fact]
    public async Task Reopening_KeepsTheFilesOfShardsStillLeased()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 60, badEvery: 50);
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 30 },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.InProcess,
                RunsDirectory = _folder.Path },
        });
        long leased;
        using (var store = new SqliteShardStore(Path.Combine(result.JobFolder, InferLayout.StateFile)))
        {
            Assert.Equal(1, store.Retry(failed: false, quarantined: true));
            leased = store.TryLease("survivor", TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow)!.Shard.Id;
        }
        var output = Path.Combine(result.JobFolder, InferLayout.OutputFolder);
        string[] kept = [$"part-{leased:D6}-feedbeef.jsonl", $".part-{leased:D6}-feedbeef.jsonl.feedbeef.tmp"];
        string[] stale = [$"part-{leased + 99:D6}-deadbeef.jsonl", $".part-{leased + 99:D6}-deadbeef.jsonl.x.tmp"];
        foreach (var name in kept.Concat(stale)) File.WriteAllText(Path.Combine(output, name), "{}\n");
        Assert.Equal(2, OutputContract.Reopen(result.JobFolder));   // the stale two (the retried part is the lease's)
        Assert.All(kept, name => Assert.True(File.Exists(Path.Combine(output, name)), name));
        Assert.All(stale, name => Assert.False(File.Exists(Path.Combine(output, name)), name));
    }

    private static void Check(string folder, InferResult result)
    {
        Assert.Equal(("completed", 118L, 2L), (result.State, result.OutputRecords, result.Quarantined));
        var output = Path.Combine(folder, InferLayout.OutputFolder);
        Assert.True(File.Exists(Path.Combine(output, OutputContract.SuccessFile)));
        var manifest = JsonSerializer.Deserialize<OutputManifest>(File.ReadAllText(Path.Combine(output,
            OutputContract.ManifestFile)), Toolkit.Runtime.ToolkitJson.Options)!;
        Assert.Equal((118L, 2L), (manifest.Records, manifest.Quarantined));
        foreach (var part in manifest.Parts.Concat(manifest.Quarantine))
        {
            var path = Path.Combine(folder, part.Path);
            Assert.Equal(part.Sha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))));
            Assert.Equal(part.Records, File.ReadLines(path).Count());
        }
        // a reader globbing output/ sees exactly the manifest's parts
        Assert.Equal(manifest.Parts.Select(p => Path.GetFileName(p.Path)).Order(),
            Directory.GetFiles(output, "part-*").Select(Path.GetFileName).Order());
        Assert.Empty(Directory.GetFiles(output, ".*"));
    }
}
