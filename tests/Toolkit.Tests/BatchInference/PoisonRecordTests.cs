using Toolkit.Jobs;
using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// Records that misbehave, in real worker processes (the faults are injected by <see cref="FaultStage"/>): one whose
/// output holds NaN is quarantined with that reason; one that kills its worker (SIGKILL, as the out-of-memory killer
/// does) and one that hangs the model are isolated by halving their shard until each is alone and quarantined; every
/// other record completes, exactly once. Workers that cannot start fail the job with their own error after a few
/// tries, spaced out, instead of respawning for ever.
/// </summary>
public sealed class PoisonRecordTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-poison-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Cli_PoisonRecords_AreIsolatedAndQuarantined_EveryOtherRecordCompletesExactlyOnce()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        WriteInput(input, new() { [37] = FaultStage.Crash, [70] = FaultStage.NotANumber, [101] = FaultStage.Stall });
        var (result, _) = InferCli.Run(_folder.Path, ["--input", input, "--runs-dir", _folder.Path, "--workers", "2",
            "--shard-size", "8", "--shard-seconds", "0", "--lease-seconds", "5", "--stall-seconds", "10",
            "--batch-size", "4"], TimeSpan.FromMinutes(5),
            environment: new Dictionary<string, string> { [FaultStage.Variable] = "records" });
        var log = File.ReadAllText(Path.Combine(result.JobFolder, "log.txt"));
        Assert.True((result.State, result.OutputRecords, result.Quarantined) == ("completed", 117L, 3L), log);
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        var reasons = InferOutput.Quarantined(result.JobFolder).ToDictionary(q => q.Id!, q => q.Reason);
        Assert.Contains("a model gave NaN or infinity", reasons["r070"]);
        Assert.Contains("isolated by halving its shard", reasons["r037"]);
        Assert.Contains("isolated by halving its shard", reasons["r101"]);
        Assert.Contains("killed by signal 9", log);   // the crash
        Assert.Contains("stalled", log);
    }

    /// <summary>Writes 120 records <c>r000</c>... of which those in <paramref name="faults"/> carry a fault
    /// marker.</summary>
    internal static void WriteInput(string path, Dictionary<int, string> faults) =>
        File.WriteAllLines(path, Enumerable.Range(0, 120).Select(i => JsonSerializer.Serialize(new
        {
            id = $"r{i:D3}", text = faults.TryGetValue(i, out var marker) ? $"a sentence {marker}" : $"sentence {i}",
        })));

    /// <summary>Workers that cannot start fail the job with their own error: in the coordinator's pool, and under
    /// mpiexec, where the rank's error is not taken for a killed rank (the ranks are not started again).</summary>
    [Theory]
    [InlineData("--workers 1")]
    [InlineData("--launcher mpi --ranks 2")]
    public void Cli_WorkersThatCannotStart_FailTheJobWithTheirOwnError_AfterBackingOff(string launch)
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 40);
        var started = DateTime.UtcNow;
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "run", "--input", input,
            "--runs-dir", _folder.Path, .. launch.Split(' ')], TimeSpan.FromMinutes(3),
            environment: new Dictionary<string, string> { [FaultStage.Variable] = "start" });
        Assert.Equal(1, code);
        Assert.Contains($"{StartFailures.Limit} workers in a row ended before doing any work; the last said: ",
            output);
        Assert.Contains("told to fail as it starts", output);
        // backed off 1 + 2 + 4 + 8 s between the five starts
        Assert.True(DateTime.UtcNow - started > TimeSpan.FromSeconds(15), output);
        var folder = Directory.GetDirectories(_folder.Path).Single();
        Assert.Equal(StartFailures.Limit, Directory.GetFiles(Path.Combine(folder, "workers"), "*.log").Length);
        Assert.Empty(Restarts.Read(folder));
    }
}
