using System.Globalization;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>
/// Starts a job's ranks as processes: <c>mpiexec -n N toolkit rank --run DIR</c> on this host (or the hosts hydra is
/// given), or the same inside the emulated cluster. Metrics are read back from the run folder while they run; each
/// rank's outcome comes back as <c>outcomes/rank-R.json</c>.
/// </summary>
internal static class MpiJobLauncher
{
    /// <summary>File in the run folder that keeps what the launcher printed.</summary>
    public const string OutputFile = "launcher.log";

    /// <summary>What starts the ranks: the launcher and its arguments up to the rank entry point's (checked before a
    /// run folder is made).</summary>
    /// <exception cref="FileNotFoundException">No mpiexec, or no toolkit command to start as the ranks; the message
    /// says what to install.</exception>
    public static (string File, IReadOnlyList<string> Arguments) Prepare(LaunchOptions launch)
    {
        var entry = RankEntryPoint.Command();
        if (launch.Cluster is { } cluster) return ("bash", [.. cluster.Command(), .. entry]);
        var mpiexec = MpiLauncher.Find()
            ?? throw new FileNotFoundException("mpiexec was not found. " + MpiLibrary.MissingMessage());
        return (mpiexec, ["-n", launch.Ranks.ToString(CultureInfo.InvariantCulture), .. entry]);
    }

    /// <summary>
    /// Runs the launcher (mpiexec, the emulated cluster's script, or srun) with the rank entry point, streams metrics
    /// from the run folder while it runs, and collects every rank's outcome; the launcher's output goes to the run
    /// folder however it ends (<see cref="Runtime.ChildProcess.RunLauncherAsync"/>). Cancelling kills the launcher and
    /// its ranks; with <paramref name="gracefulStop"/> it first gets SIGTERM and 10 s to end its ranks itself (srun
    /// cancels its step that way).
    /// </summary>
    public static async Task<(TOutcome[] Outcomes, string Output)> RunAsync<TOutcome>(RunDirectory run,
        LaunchOptions launch, (string File, IReadOnlyList<string> Arguments) launcher,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken, bool gracefulStop = false)
    {
        var (file, arguments) = (launcher.File,
            (IReadOnlyList<string>)[.. launcher.Arguments, .. RankVerb(run.Path)]);
        run.Log($"launch: {file} {string.Join(' ', arguments)}");
        var reader = new RunReader(run.Path);
        int exitCode;
        string text;
        try
        {
            (exitCode, text) = await ChildProcess.RunLauncherAsync(file, arguments, run.File(OutputFile),
                TimeSpan.FromMilliseconds(250),
                () => { foreach (var point in reader.ReadNew()) progress?.Report(point); }, gracefulStop,
                    cancellationToken);
        }
        catch (OperationCanceledException)
        {
            run.Log("cancelled: the launcher and its ranks are stopped");
            throw;
        }
        foreach (var point in reader.ReadNew()) progress?.Report(point);
        return (Collect<TOutcome>(run, launch,
            $"The job's launcher ({Path.GetFileName(file)}) exited with code {exitCode}", exitCode == 0, text), text);
    }

    /// <summary>
    /// Reads every rank's outcome from the run folder, and records which host each rank ran on (<c>hosts.json</c>),
    /// warning in the run log when a group spans hosts.
    /// </summary>
    /// <exception cref="JobFailedException">A rank wrote no outcome; the message has <paramref name="how"/>, the run
    /// folder and the last output.</exception>
    internal static TOutcome[] Collect<TOutcome>(RunDirectory run, LaunchOptions launch, string how, bool cleanExit,
        string output)
    {
        var missing = Enumerable.Range(0, launch.Ranks).Where(r => !File.Exists(JobHost.OutcomePath(run.Path,
            r))).ToList();
        if (missing.Count > 0)
            throw new JobFailedException(
                $"{how}; rank(s) {string.Join(", ", missing)} produced no outcome. Run folder: {run.Path}. Last " +
                    $"output:\n{Tail(output)}");
        if (!cleanExit)
            // Every rank wrote its outcome and passed the final barrier, so the work completed; a failure after that
            // is in process teardown (seen with MPICH 4.0 over UCX tcp on the emulated cluster). Keep the result.
            run.Log($"warning: {how} after every rank finished (teardown). Last output:\n{Tail(output)}");
        var hosts = Enumerable.Range(0, launch.Ranks).Select(r => File.Exists(JobHost.HostPath(run.Path,
            r)) ? File.ReadAllText(JobHost.HostPath(run.Path, r)).Trim() : "?").ToArray();
        ToolkitJson.Write(run.File(JobHost.HostsFile), hosts.Select((h, r) => new RankHost(r, r / launch.GroupSize,
            h)).ToArray());
        for (var g = 0; g < launch.Ranks / launch.GroupSize; g++)
            if (hosts.Skip(g * launch.GroupSize).Take(launch.GroupSize).Distinct().Count() > 1)
                run.Log($"warning: group {g} spans hosts {string.Join(", " +
                    "", hosts.Skip(g * launch.GroupSize).Take(launch.GroupSize).Distinct(
                        ))}: its intra-group traffic crossed the network");
        return Enumerable.Range(0, launch.Ranks).Select(r => ToolkitJson.Read<TOutcome>(JobHost.OutcomePath(run.Path,
            r))).ToArray();
    }

    /// <summary>What every rank runs after the toolkit command: <c>rank --run DIR</c>.</summary>
    internal static IReadOnlyList<string> RankVerb(string runPath) =>
        ChildCommands.Of(ChildCommands.Rank, new RankProcessOptions { Run = runPath });

    internal static string Tail(string text) => string.Join('\n', text.Split('\n').TakeLast(30));
}

/// <summary>Where one rank ran (one entry of the run folder's <c>hosts.json</c>).</summary>
/// <param name="Rank">World rank.</param>
/// <param name="Group">Its group (PaRO's intra level).</param>
/// <param name="Host">The host name it reported.</param>
internal sealed record RankHost(int Rank, int Group, string Host);
