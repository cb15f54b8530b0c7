using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// Under mpiexec a worker rank runs its worker as a child process: a worker SIGKILLed mid-job, or one that stalled and
/// left by itself, is started again by its rank, its shards are redone once their leases expire, and the MPI job goes
/// on (hydra would tear every rank down if the rank process itself died).
/// </summary>
public sealed class RankWorkerTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-rankworker-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task UnderMpiexec_AKilledWorker_IsStartedAgainByItsRank_EveryRecordExactlyOnce()
    {
        var (result, killed, _) = await RunKilling(rankProcess: false);
        // the rank started its worker again, under a new name
        Assert.Contains(result.Workers, w => w.Id == $"{killed}-1");
        Assert.Equal(3, result.Workers.Count);
        Assert.Empty(Restarts.Read(result.JobFolder));
    }

    /// <summary>A worker rank's own process SIGKILLed: mpiexec ends every rank, the job host starts them again on the
    /// job folder (a resume), and the job completes with every record exactly once; the restart is recorded.</summary>
    [Fact]
    public async Task UnderMpiexec_AKilledRankProcess_TheRanksStartAgain_EveryRecordExactlyOnce()
    {
        var (result, _, log) = await RunKilling(rankProcess: true);
        var restart = Assert.Single(Restarts.Read(result.JobFolder));
        Assert.Contains("mpiexec", restart.Cause);
        Assert.Contains("the ranks start again and resume the job", log);
    }

    /// <summary>A 3-rank mpiexec job of 2400 records (8 malformed) in which the first worker to commit a shard, or its
    /// rank process, is SIGKILLed; checks that it completes with every record exactly once and returns the result,
    /// the killed worker's name and the job's log.</summary>
    private async Task<(InferResult Result, string Killed, string Log)> RunKilling(bool rankProcess)
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 2400, seed: 7, badEvery: 300);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var job = InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 40, LeaseSeconds = 5 },
            Launch = InferJobOptions.DefaultLaunch with { Launcher = Launcher.Mpi, Ranks = 3,
                RunsDirectory = _folder.Path },
        }, cancel: timeout.Token);
        string? killed = null;
        while (killed is null && !job.IsCompleted)
        {
            await Task.Delay(50);
            killed = KillAWorkerThatCommitted(rankProcess);
        }
        var result = await job;
        Assert.True(killed is not null, "the job finished before a worker or its rank could be killed");
        var log = File.ReadAllText(Path.Combine(result.JobFolder, "log.txt"));
        Assert.True((result.State, result.OutputRecords, result.Quarantined) == ("completed", 2392L, 8L), log);
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        return (result, killed, log);
    }

    /// <summary>Poison records under mpiexec: a record that SIGKILLs its worker and one that hangs the model (the
    /// stalled worker exits by itself, its rank starts it again) are each isolated and quarantined; the MPI job goes
    /// on and every other record completes exactly once.</summary>
    [Fact]
    public void Cli_UnderMpiexec_PoisonRecords_AreIsolated_TheJobGoesOn()
    {
        var input = Path.Combine(_folder.Path, "poison.jsonl");
        PoisonRecordTests.WriteInput(input, new() { [37] = FaultStage.Crash, [101] = FaultStage.Stall });
        var (result, _) = InferCli.Run(_folder.Path, ["--input", input, "--runs-dir", _folder.Path, "--launcher", "mpi",
            "--ranks", "3", "--shard-size", "8", "--shard-seconds", "0", "--lease-seconds", "5", "--stall-seconds",
            "8", "--batch-size", "4"], TimeSpan.FromMinutes(5),
            environment: new Dictionary<string, string> { [FaultStage.Variable] = "records" });
        var log = File.ReadAllText(Path.Combine(result.JobFolder, "log.txt"));
        Assert.True((result.State, result.OutputRecords, result.Quarantined) == ("completed", 118L, 2L), log);
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var reasons = InferOutput.Quarantined(result.JobFolder).ToDictionary(q => q.Id!, q => q.Reason);
        Assert.Contains("isolated by halving its shard", reasons["r037"]);
        Assert.Contains("isolated by halving its shard", reasons["r101"]);
        // the stalled worker left by itself (no pool of the coordinator can kill a rank's worker)
        var workerLogs = string.Join("\n", Directory.GetFiles(Path.Combine(result.JobFolder, "workers"), "*.log")
            .Select(File.ReadAllText));
        Assert.Contains($"exiting with code {InferWorkerHost.Stalled}", workerLogs);
    }

    /// <summary>SIGKILLs the first worker whose log shows a committed shard, or the rank process that started it
    /// (<paramref name="rankProcess"/>); returns the worker's name, or null.</summary>
    private string? KillAWorkerThatCommitted(bool rankProcess)
    {
        var logs = Directory.GetDirectories(_folder.Path, "infer-*").Select(f => Path.Combine(f, "workers"))
            .FirstOrDefault(Directory.Exists);
        if (logs is null) return null;
        foreach (var log in Directory.GetFiles(logs, "*.log"))
        {
            var id = Path.GetFileNameWithoutExtension(log);
            using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (!new StreamReader(stream).ReadToEnd().Contains($"{id}: shard ", StringComparison.Ordinal)) continue;
            var pid = int.Parse(File.ReadAllText(Path.Combine(logs, $"{id}.pid")));
            // /proc/PID/stat: "pid (name) state ppid ..."
            if (rankProcess) pid = int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ')[2]);
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            process.Kill();   // SIGKILL
            return id;
        }
        return null;
    }
}
