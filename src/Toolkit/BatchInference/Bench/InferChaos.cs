using System.Diagnostics;
using System.Globalization;
using Toolkit.Jobs;
using Toolkit.Options;
using Toolkit.Reporting;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>The chaos test of batch inference: what to kill, and how big the job is.</summary>
internal sealed record ChaosOptions
{
    /// <summary>Input records (generated, with a malformed one every 1000).</summary>
    [Option("Input records (generated sentences; every 1000th record is malformed and must be quarantined).")]
    public int Records { get; init; } = 100_000;

    /// <summary>Records per shard.</summary>
    [Option("Records per shard.")]
    public int ShardSize { get; init; } = 500;

    /// <summary>Workers kept alive (the autoscaler replaces killed ones).</summary>
    [Option("Workers kept alive (killed ones are replaced).")]
    public int Workers { get; init; } = 2;

    /// <summary>Workers killed with SIGKILL, spread over the run. The job's retry cap is set above it, so a shard
    /// unlucky enough to be held by every killed worker is still done.</summary>
    [Option("Workers killed with SIGKILL, spread over the run.")]
    public int Kills { get; init; } = 10;

    /// <summary>Times the coordinator is killed with SIGKILL and resumed.</summary>
    [Option("Times the coordinator process is killed with SIGKILL and the job resumed (toolkit infer resume).")]
    public int CoordinatorKills { get; init; } = 2;

    /// <summary>Records that kill the worker process that reads them.</summary>
    [Option("Records that kill (SIGKILL) the worker process that reads them: each must end up alone in quarantine.")]
    public int Poison { get; init; } = 3;

    /// <summary>Records whose output holds NaN.</summary>
    [Option("Records whose model output holds NaN: each must be quarantined with that reason.")]
    public int Nan { get; init; } = 3;

    /// <summary>Records that hang the model.</summary>
    [Option("Records that hang the model for ever: the stalled worker is killed and the record isolated.")]
    public int Stalls { get; init; } = 2;

    /// <summary>The job's --stall-seconds.</summary>
    [Option("The job's --stall-seconds: how long a worker may hold shards without progress.")]
    public double StallSeconds { get; init; } = 10;

    /// <summary>Lease length in seconds (how soon a killed worker's shards come back).</summary>
    [Option("Lease length in seconds: how soon a killed worker's shards return to the queue.")]
    public double LeaseSeconds { get; init; } = 5;

    /// <summary>Seed of the input and of the kill schedule.</summary>
    [Option("Seed of the generated input and of which worker is killed.")]
    public int Seed { get; init; } = 1;

    /// <summary>Folder for the chaos run (input and job folder).</summary>
    [Option("Folder that holds the chaos run ($TOOLKIT_RUNS_DIR, else runs).", Name = "runs-dir")]
    public string RunsDirectory { get; init; } = Runs.RunDirectory.DefaultRoot;
}

/// <summary>What a chaos run did and the exactly-once check of its output, read back from the files.</summary>
internal sealed record ChaosResult(string JobFolder, int Records, int WorkersKilled, int CoordinatorsKilled,
    int Resumes, long ShardsRetried, double Seconds, OutputCheck Check, IReadOnlyList<string> Events,
    IReadOnlyList<ChaosFault> Faults) : IFacts
{
    /// <inheritdoc/>
    public string Title
        => $"batch-inference chaos: {(Check.ExactlyOnce ? "every record exactly once" : "NOT exactly once")}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts() =>
    [
        ("job folder", JobFolder),
        ("records", $"{Records:N0}"),
        ("killed", $"{WorkersKilled} workers (SIGKILL), the coordinator {CoordinatorsKilled} times; {Resumes} resumes"),
        ("shards retried", $"{ShardsRetried:N0}"),
        ("faulty records", string.Join("; ", Faults.GroupBy(f => f.Kind).Select(g =>
            $"{g.Count()} {g.Key}, {g.Count(f => f.Quarantined)} quarantined"))),
        ("time", $"{Seconds:F1} s"),
        ("output read back",
            $"{Check.Rows:N0} rows + {Check.Quarantined:N0} quarantined; {Check.Missing:N0} " +
                $"lost, {Check.Duplicated:N0} duplicated, {Check.Unexpected:N0} unexpected"),
    ];
}

/// <summary>
/// Runs a real job (<c>toolkit infer run</c>, local worker processes, the MiniLM embedding model) and attacks it:
/// workers killed with SIGKILL at points spread over the run, the coordinator process killed with SIGKILL and the job
/// resumed with <c>toolkit infer resume</c>; then reads the output back and checks every input record is there exactly
/// once. Nothing is mocked: processes, gRPC on loopback, SQLite, files.
/// </summary>
internal static class InferChaos
{
    /// <summary>Runs the chaos test.</summary>
    public static async Task<ChaosResult> RunAsync(ChaosOptions o, Action<string>? log = null,
        CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var events = new List<string>();
        void Event(string e)
        {
            var line = string.Create(CultureInfo.InvariantCulture, $"{clock.Elapsed.TotalSeconds,7:F1} s  {e}");
            events.Add(line);
            log?.Invoke(line);
        }
        var root = Path.GetFullPath(Path.Combine(o.RunsDirectory,
            $"chaos-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Random.Shared.Next(0x10000):x4}"));
        Directory.CreateDirectory(root);
        var input = Path.Combine(root, "input.jsonl");
        SentenceDataset.Write(input, o.Records, o.Seed, badEvery: 1000);
        var random = new Random(o.Seed);
        var faults = PlantFaults(input, o, random);
        var seen = new HashSet<int>();
        var job = new InferJobOptions
        {
            Data = new() { Input = input },
            Launch = InferJobOptions.DefaultLaunch with { RunsDirectory = root },
            Scheduling = new() { Workers = o.Workers, MinWorkers = o.Workers, ShardSize = o.ShardSize,
                Retries = o.Kills + 2, LeaseSeconds = o.LeaseSeconds, StallSeconds = o.StallSeconds },
        };
        var coordinator = Start(Jobs.ChildCommands.Of(Jobs.ChildCommands.InferRun, job), root, "coordinator-0");
        foreach (var f in faults) Event($"record {f.Id}: {f.Kind}");
        string? folder = null;
        int killed = 0, coordinatorsKilled = 0, resumes = 0;
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                await Task.Delay(200, cancel);
                folder ??= Directory.GetDirectories(root, "infer-*").FirstOrDefault(d => File.Exists(Path.Combine(d,
                    InferLayout.StateFile)));
                if (coordinator.HasExited)
                {
                    if (coordinator.ExitCode != 0) throw new InvalidOperationException(
                        $"the coordinator exited with code {coordinator.ExitCode}; see {root}/coordinator-*.log");
                    break;
                }
                if (folder is null) continue;
                InferStatus? status;
                try { status = InferJob.TryStatus(folder); }
                catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException) { continue; }
                if (status is null) continue;   // the state exists, the shards are not laid out yet
                var progress = (double)status.RecordsDone / Math.Max(1, status.Records);
                // Worker kills (of a worker holding a lease) at progress (j+1)/(kills+1) of 90 %, coordinator kills at
                // (k+1)/(coordinator kills+1) of 80 %.
                if (killed < o.Kills && progress >= 0.9 * (killed + 1) / (o.Kills + 1) && HoldingLeases(folder,
                    LiveWorkers(folder, seen)) is { Count: > 0 } live)
                {
                    var (id, pid) = live[random.Next(live.Count)];
                    ProcessPool.Signal(pid, 9);
                    killed++;
                    Event($"SIGKILL worker {id} (pid {pid}) at {progress:P0}");
                }
                if (coordinatorsKilled < o.CoordinatorKills
                    && progress >= 0.8 * (coordinatorsKilled + 1) / (o.CoordinatorKills + 1))
                {
                    ProcessPool.Signal(coordinator.Id, 9);
                    await coordinator.WaitForExitAsync(cancel);
                    coordinatorsKilled++;
                    Event($"SIGKILL coordinator (pid {coordinator.Id}) at {progress:P0}; its workers are orphaned");
                    coordinator = Start([.. Jobs.ChildCommands.InferResume, folder], root,
                        $"coordinator-{++resumes}");
                    Event($"resumed: toolkit infer resume (pid {coordinator.Id})");
                }
            }
        }
        finally
        {
            if (!coordinator.HasExited) coordinator.Kill(entireProcessTree: true);
            // orphans still retrying a dead coordinator
            foreach (var (_, pid) in folder is null ? [] : LiveWorkers(folder, [])) ProcessPool.Signal(pid, 9);
        }
        folder ??= Directory.GetDirectories(root, "infer-*").FirstOrDefault(d => File.Exists(Path.Combine(d,
            InferLayout.StateFile)))
            ?? throw new InvalidOperationException(
                $"the coordinator exited without creating a job folder in {root}; see {root}/coordinator-*.log");
        Event("job completed");
        using var store = new SqliteShardStore(Path.Combine(folder!, InferLayout.StateFile));
        // A shard that went back to the queue keeps the reason (its attempt count may not grow: a lease a resumed
        // coordinator inherited and saw expire is forgiven).
        var retried = store.Shards().Count(s => s.LastError is not null);
        var check = InferOutput.Verify(folder!, new JsonlSource(input, "id", "text"));
        Event($"read back: {check.Rows} rows, {check.Quarantined} quarantined, {check.Missing} " +
            $"lost, {check.Duplicated} duplicated");
        var quarantined = InferOutput.Quarantined(folder!).Select(q => q.Id).ToHashSet();
        var result = new ChaosResult(folder!, o.Records, killed, coordinatorsKilled, resumes, retried,
            clock.Elapsed.TotalSeconds, check, events, [.. faults.Select(f => f with {
                Quarantined = quarantined.Contains(f.Id) })]);
        ToolkitJson.Write(Path.Combine(root, "chaos.json"), result);
        return result;
    }

    /// <summary>
    /// Marks records of the input with <see cref="FaultStage"/>'s markers (the job's workers run with the faults on):
    /// <see cref="ChaosOptions.Poison"/> that kill their worker, <see cref="ChaosOptions.Nan"/> whose output is NaN,
    /// <see cref="ChaosOptions.Stalls"/> that hang the model; well-formed records only, chosen by the seed.
    /// </summary>
    private static List<ChaosFault> PlantFaults(string input, ChaosOptions o, Random random)
    {
        var lines = File.ReadAllLines(input);
        var kinds = Enumerable.Repeat(("crash", FaultStage.Crash), o.Poison)
            .Concat(Enumerable.Repeat(("nan", FaultStage.NotANumber), o.Nan))
            .Concat(Enumerable.Repeat(("stall", FaultStage.Stall), o.Stalls)).ToList();
        if (kinds.Count * 2 > lines.Length) throw new ArgumentOutOfRangeException(nameof(o),
            $"{kinds.Count} faulty records need an input of at least {kinds.Count * 2} records");
        var faults = new List<ChaosFault>();
        var chosen = new HashSet<int>();
        foreach (var (kind, marker) in kinds)
        {
            while (true)
            {
                var i = random.Next(lines.Length);
                if (!chosen.Add(i)) continue;
                if (System.Text.Json.Nodes.JsonNode.Parse(lines[i]) is not System.Text.Json.Nodes.JsonObject row
                    || row["text"]?.GetValue<string>() is not { } text || row["id"]?.GetValue<string>() is not { } id)
                    continue;   // a malformed record stays as it is
                row["text"] = $"{text} {marker}";
                lines[i] = row.ToJsonString();
                faults.Add(new ChaosFault(id, kind, false));
                break;
            }
        }
        File.WriteAllLines(input, lines);
        return faults;
    }

    /// <summary>The workers of <paramref name="live"/> that hold a lease: a kill then lands mid-shard.</summary>
    internal static List<(string Id, int Pid)> HoldingLeases(string folder, List<(string Id, int Pid)> live)
    {
        if (live.Count == 0) return live;
        try
        {
            using var store = new SqliteShardStore(Path.Combine(folder, InferLayout.StateFile));
            var holders = store.Shards().Where(s => s.State == ShardState.Leased).Select(s => s.Worker).ToHashSet();
            return [.. live.Where(w => holders.Contains(w.Id))];
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException) { return []; }
    }

    internal static List<(string Id, int Pid)> LiveWorkers(string folder, HashSet<int> seen)
    {
        var workers = new List<(string, int)>();
        var dir = Path.Combine(folder, "workers");
        if (!Directory.Exists(dir)) return workers;
        foreach (var file in Directory.GetFiles(dir, "*.pid"))
        {
            var id = Path.GetFileNameWithoutExtension(file);
            if (int.TryParse(File.ReadAllText(file), out var pid) && IsWorker(pid, id))
            {
                seen.Add(pid);
                workers.Add((id, pid));
            }
        }
        return workers;
    }

    /// <summary>
    /// True when <paramref name="pid"/> is still this job's worker <paramref name="id"/>. PIDs are reused (pid_max is
    /// often 32768, and every thread takes one), and /proc also answers for thread ids: a signal to a reused number
    /// would hit another process (a notebook's worker, the test host), so the process must be a process (its Tgid is
    /// itself) whose command line names this worker's id.
    /// </summary>
    private static bool IsWorker(int pid, string id)
    {
        try
        {
            var status = File.ReadAllLines($"/proc/{pid}/status");
            var tgid = status.FirstOrDefault(l => l.StartsWith("Tgid:",
                StringComparison.Ordinal))?["Tgid:".Length..].Trim();
            if (tgid != pid.ToString(CultureInfo.InvariantCulture)) return false;
            var arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            return arguments.Contains(Jobs.ChildCommands.InferWorker[^1]) && arguments.Contains(id);
        }
        catch (IOException) { return false; }                 // gone
        catch (UnauthorizedAccessException) { return false; }
    }

    private static Process Start(IReadOnlyList<string> verb, string root, string name)
    {
        var command = RankEntryPoint.Command();
        // The log writer is never closed (it flushes every line): lines can arrive until the process has exited and
        // been read to its end.
        return ChildProcess.StartLogged(command[0], [.. command.Skip(1), .. verb], Path.Combine(root,
            $"{name}.log"), new Dictionary<string, string> { [FaultStage.Variable] = "records" }).Process;
    }
}

/// <summary>A record the chaos run made faulty, and whether the job quarantined it.</summary>
/// <param name="Id">The record's id.</param>
/// <param name="Kind">crash, nan or stall.</param>
/// <param name="Quarantined">Whether it ended in the quarantine.</param>
internal sealed record ChaosFault(string Id, string Kind, bool Quarantined);

/// <summary>Faults injected on purpose, to show (in a notebook, a workshop) that a job absorbs them.</summary>
public static class InferFaults
{
    /// <summary>Kills (SIGKILL) one worker process of the running job in <paramref name="jobFolder"/> that holds a
    /// lease, so the kill lands mid-shard; null when no worker process holds one yet (try again a moment
    /// later).</summary>
    /// <returns>The killed worker's id, or null.</returns>
    public static string? KillWorker(string jobFolder)
    {
        if (!File.Exists(Path.Combine(jobFolder, InferLayout.StateFile))) return null;
        var live = InferChaos.HoldingLeases(jobFolder, InferChaos.LiveWorkers(jobFolder, []));
        if (live.Count == 0) return null;
        ProcessPool.Signal(live[0].Pid, 9);
        return live[0].Id;
    }
}
