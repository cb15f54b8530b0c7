using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>
/// A training job the job host can restart (torchrun's <c>--max-restarts</c>): when a rank dies or the job fails,
/// every rank is started again from the run's latest intact checkpoint, up to <see cref="MaxRestarts"/> times.
/// </summary>
internal interface IRestartableJob<TOptions>
{
    /// <summary>How many restarts the options allow (0: none).</summary>
    int MaxRestarts(TOptions options);

    /// <summary>The options that continue the run from <paramref name="checkpoint"/> (of step
    /// <paramref name="step"/>) to the end <paramref name="options"/> asked for.</summary>
    TOptions ResumeAt(TOptions options, string checkpoint, int step);
}

/// <summary>One restart, as <c>restarts.jsonl</c> in the run folder records it.</summary>
/// <param name="Attempt">1 for the first restart.</param>
/// <param name="Time">When it was decided.</param>
/// <param name="Cause">The failure's message (first line).</param>
/// <param name="Step">The step resumed from (its checkpoint), or 0 when there was none (started over).</param>
public sealed record JobRestart(int Attempt, DateTimeOffset Time, string Cause, int Step);

/// <summary>Records restarts in a run folder and injects the faults that tests and drills use.</summary>
public static class Restarts
{
    /// <summary>The restarts of a run, one JSON object per line.</summary>
    public const string FileName = "restarts.jsonl";

    /// <summary>The metric that marks a restart in the run's charts (value: the attempt, at the step
    /// resumed).</summary>
    public const string Metric = "job.restarts";

    /// <summary>
    /// A drill file in the runs folder (beside the run folders): <c>{"rank": R, "step": S, "kill": true}</c> makes
    /// rank R of the next training run there fail once as it reaches step S, killed by SIGKILL (<c>kill</c>) or by an
    /// exception. It fires once (it is renamed when it does), so the restarted run goes on.
    /// </summary>
    public const string DrillFile = "toolkit-train-fault.json";

    /// <summary>The restarts recorded in <paramref name="runPath"/>.</summary>
    public static IReadOnlyList<JobRestart> Read(string runPath)
    {
        var file = Path.Combine(runPath, FileName);
        return File.Exists(file)
            ? [.. File.ReadLines(file).Where(l => l.Length > 0).Select(l =>
                System.Text.Json.JsonSerializer.Deserialize<JobRestart>(l, ToolkitJson.Options)!)]
            : [];
    }

    /// <summary>Records <paramref name="restart"/>; <paramref name="what"/> says what starts again (default: every
    /// rank, from the checkpoint of the restart's step or from the beginning).</summary>
    internal static void Record(RunDirectory run, JobRestart restart, string? what = null)
    {
        File.AppendAllText(run.File(FileName),
            System.Text.Json.JsonSerializer.Serialize(restart, ToolkitJson.Compact) + "\n");
        run.Metric(restart.Step, 0, Metric, restart.Attempt);
        run.Log($"restart {restart.Attempt}: {restart.Cause}; " + (what ?? "every rank starts again from " +
            (restart.Step > 0 ? $"the checkpoint of step {restart.Step}" : "the beginning (no checkpoint yet)")));
    }

    /// <summary>Fails this rank here if the runs folder's drill file says so (once).</summary>
    internal static void Drill(string runPath, int rank, int step)
    {
        var file = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(runPath))!, DrillFile);
        if (!File.Exists(file)) return;
        DrillSpec? drill;
        try { drill = ToolkitJson.Read<DrillSpec>(file); }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { return; }
        if (drill is null || drill.Rank != rank || drill.Step != step) return;
        try { File.Move(file, file + ".fired"); }
        catch (IOException) { return; }   // another process fired it
        if (drill.Kill) PosixSignals.Send(Environment.ProcessId, 9);
        throw new InvalidOperationException($"drill: rank {rank} fails at step {step} ({DrillFile})");
    }

    private sealed record DrillSpec(int Rank, int Step, bool Kill);
}
