using System.Text.Json;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>One run folder as <c>toolkit jobs</c> lists it.</summary>
/// <param name="Id">The run folder's name.</param>
/// <param name="Kind">The job kind (paro-train, rl-train, infer...).</param>
/// <param name="Launcher">inproc, mpi, slurm (or the batch-inference launcher).</param>
/// <param name="State">finished, failed, cancelled, or for a Slurm job the scheduler's state; "unfinished" when the
/// folder says no more (a run stopped from outside, or one still running in another process).</param>
/// <param name="SlurmJobId">The Slurm job, if it was submitted with sbatch.</param>
/// <param name="Started">When the folder was made.</param>
/// <param name="Path">The run folder.</param>
internal sealed record JobSummary(string Id, string Kind, string Launcher, string State, string? SlurmJobId,
    DateTimeOffset Started, string Path);

/// <summary>
/// The toolkit's jobs, read from the run folders under a runs directory (the folders are the record: nothing else is
/// kept); Slurm jobs are asked about with squeue/scontrol/sacct when Slurm's commands are there. A finished job is
/// re-plotted from its folder with <c>#!toolkit show --run PATH</c> or <see cref="RunReader"/>.
/// </summary>
internal static class JobList
{
    /// <summary>The runs under <paramref name="runsDirectory"/>, newest first (by their config.json's time).</summary>
    /// <param name="runsDirectory">The folder of run folders.</param>
    /// <param name="last">Only this many of the newest (0: all); only those are read and asked about.</param>
    /// <param name="askSlurm">Ask Slurm about unfinished Slurm jobs (when its commands are on PATH).</param>
    public static IReadOnlyList<JobSummary> Read(string runsDirectory, int last = 0, bool askSlurm = true)
    {
        if (!Directory.Exists(runsDirectory)) return [];
        var canAsk = askSlurm && SlurmClient.Find("squeue") is not null;
        var folders = Directory.GetDirectories(runsDirectory)
            .Select(d => (Path: d, Config: new FileInfo(System.IO.Path.Combine(d, RunDirectory.ConfigFile))))
            .Where(d => d.Config.Exists)
            .OrderByDescending(d => d.Config.LastWriteTimeUtc)
            .Select(d => d.Path);
        return (last > 0 ? folders.Take(last) : folders).Select(d => Summarize(d, canAsk)).ToList();
    }

    private static JobSummary Summarize(string path, bool askSlurm)
    {
        string kind = "?", launcher = "?";
        try
        {
            using var config = JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(path,
                RunDirectory.ConfigFile)));
            var root = config.RootElement;
            if (root.TryGetProperty("kind", out var k) && k.ValueKind == JsonValueKind.String) kind = k.GetString()!;
            if (root.TryGetProperty("options", out var o) && o.ValueKind == JsonValueKind.Object)
            {
                if (o.TryGetProperty("launch",
                    out var l) && l.ValueKind == JsonValueKind.Object && l.TryGetProperty("launcher",
                        out var v)) launcher = v.ToString();
                else if (o.TryGetProperty("launcher", out var w)) launcher = w.ToString();
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            kind = "(unreadable config.json)";
        }
        string? slurmJob = null;
        var record = System.IO.Path.Combine(path, SlurmJobLauncher.Folder, SlurmJobLauncher.RecordFile);
        if (File.Exists(record))
            try { slurmJob = ToolkitJson.Read<SlurmJobRecord>(record).JobId; }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException) { }
        List<string> log;
        try { log = File.Exists(System.IO.Path.Combine(path,
            RunDirectory.LogFile)) ? File.ReadLines(System.IO.Path.Combine(path, RunDirectory.LogFile)).ToList() : []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log = []; }
        // The host logs "cancelled: ..." when the user cancels and "failed: ..." for any other end without a result.
        var state = File.Exists(System.IO.Path.Combine(path, JobHost.ResultFile)) ? "finished"
            : log.Any(l => l.Contains(" cancelled: ", StringComparison.Ordinal)) ? "cancelled"
            : log.Any(l => l.Contains(" failed: ", StringComparison.Ordinal)) ? "failed"
            : "unfinished";
        if (state == "unfinished" && slurmJob is not null && askSlurm
            && SlurmClient.Query(slurmJob) is { } s) state = $"slurm: {s}";
        return new(System.IO.Path.GetFileName(path), kind, launcher, state, slurmJob,
            File.GetLastWriteTimeUtc(System.IO.Path.Combine(path, RunDirectory.ConfigFile)),
                System.IO.Path.GetFullPath(path));
    }
}
