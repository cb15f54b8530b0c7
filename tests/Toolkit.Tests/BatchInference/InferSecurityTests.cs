using System.Runtime.Versioning;
using Grpc.Core;
using Toolkit.BatchInference;
using Toolkit.Grpc;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// A job on a shared machine: its token is in a file only its owner can read (created that way), never in
/// config.json or on a worker's command line, and a call without it is refused on loopback too.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class InferSecurityTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly TemporaryFolder _folder = new("toolkit-infer-security-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void ASecretFile_IsOwnerOnly_FromItsFirstByte_AndReplacedWhole()
    {
        var path = Path.Combine(_folder.Path, "secret");
        using (var created = AtomicFile.CreateSecret(path))
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(path));   // before anything is written to it
        File.Delete(path);
        File.WriteAllText(path, "old");
        AtomicFile.WriteSecret(path, "new-token"u8);
        Assert.Equal(("new-token", OwnerOnly), (File.ReadAllText(path), File.GetUnixFileMode(path)));
        Assert.Equal(["secret"], Directory.GetFiles(_folder.Path).Select(Path.GetFileName));   // no temporary left
    }

    [Fact]
    public async Task AJobsToken_IsInItsOwnerOnlyFile_NeverInConfigOrOnACommandLine_AndRequiredOnLoopback()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 800, seed: 4);
        var spec = new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 50, Workers = 2 },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.Local, RunsDirectory = _folder.Path },
        };
        var checkedWhileRunning = new TaskCompletionSource<string>();
        var job = InferJob.RunAsync(spec, new Progress<InferStatus>(s =>
        {
            if (s.ActiveWorkers < 2 || checkedWhileRunning.Task.IsCompleted) return;
            try { checkedWhileRunning.TrySetResult(CheckRunningJob(Directory.GetDirectories(_folder.Path).Single())); }
            catch (Exception e) { checkedWhileRunning.TrySetException(e); }
        }));
        var result = await job;
        Assert.Equal("completed", result.State);
        var token = await checkedWhileRunning.Task.WaitAsync(TimeSpan.FromSeconds(1));

        // The intruder's calls were refused and logged; the token never reached config.json.
        Assert.Contains("rejected: /toolkit.inference.v1.Coordinator/Join", File.ReadAllText(Path.Combine(
            result.JobFolder, "log.txt")));
        Assert.DoesNotContain(token, File.ReadAllText(Path.Combine(result.JobFolder, "config.json")));
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
    }

    /// <summary>Checks a running job's folder and worker processes; returns its token.</summary>
    private static string CheckRunningJob(string folder)
    {
        var tokenFile = Path.Combine(folder, InferLayout.TokenFile);
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(tokenFile));
        var token = File.ReadAllText(tokenFile).Trim();
        Assert.True(token.Length >= 40, token);
        Assert.DoesNotContain(token, File.ReadAllText(Path.Combine(folder, "config.json")));
        var pids = Directory.GetFiles(Path.Combine(folder, "workers"), "*.pid").Select(File.ReadAllText).ToList();
        Assert.NotEmpty(pids);
        foreach (var pid in pids)
        {
            var commandLine = File.ReadAllText($"/proc/{pid.Trim()}/cmdline").Replace('\0', ' ');
            Assert.Contains("infer worker", commandLine);
            Assert.DoesNotContain(token, commandLine);
            Assert.DoesNotContain("--token ", commandLine);
        }
        var address = Toolkit.Runtime.ToolkitJson.Read<CoordinatorAddress>(Path.Combine(folder,
            InferLayout.CoordinatorFile)).Address;
        Assert.StartsWith("http://127.0.0.1:", address);
        foreach (var presented in new[] { null, "guess" })
        {
            using var intruder = new GrpcCoordinator(address, presented);
            var e = Assert.Throws<AggregateException>(() => intruder.JoinAsync(new WorkerHello("intruder", "h", 1))
                .Wait()).InnerException as RpcException;
            Assert.Equal(StatusCode.Unauthenticated, e?.StatusCode);
        }
        return token;
    }
}
