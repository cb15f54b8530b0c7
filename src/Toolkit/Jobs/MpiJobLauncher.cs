using System.Diagnostics;
using System.Globalization;
using System.Text;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>
/// Starts a job's ranks as processes: <c>mpiexec -n N toolkit rank --run DIR</c> on this host (or the
/// hosts hydra is given), or the same inside the emulated cluster. Metrics are read back from the run
/// folder while they run; each rank's outcome comes back as <c>outcomes/rank-R.json</c>.
/// </summary>
internal static class MpiJobLauncher
{
    /// <summary>File in the run folder that keeps what the launcher printed.</summary>
    public const string OutputFile = "launcher.log";

    /// <summary>What starts the ranks: the launcher and its arguments up to the rank entry point's (checked before a run folder is made).</summary>
    /// <exception cref="FileNotFoundException">No mpiexec, or no toolkit command to start as the ranks; the message says what to install.</exception>
    public static (string File, IReadOnlyList<string> Arguments) Prepare(LaunchOptions launch)
    {
        var entry = RankEntryPoint.Command();
        if (launch.Cluster is { } cluster) return ("bash", [.. cluster.Command(), .. entry]);
        var mpiexec = MpiLauncher.Find() ?? throw new FileNotFoundException("mpiexec was not found. " + MpiLibrary.MissingMessage());
        return (mpiexec, ["-n", launch.Ranks.ToString(CultureInfo.InvariantCulture), .. entry]);
    }

    public static async Task<(TOutcome[] Outcomes, string Output)> RunAsync<TOutcome>(RunDirectory run, LaunchOptions launch, (string File, IReadOnlyList<string> Arguments) launcher,
        IProgress<MetricPoint>? progress, CancellationToken cancellationToken)
    {
        var (file, arguments) = (launcher.File, (IReadOnlyList<string>)[.. launcher.Arguments, "rank", "--run", run.Path]);
        run.Log($"launch: {file} {string.Join(' ', arguments)}");
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var reader = new RunReader(run.Path);
        try
        {
            while (!process.HasExited)
            {
                await Task.Delay(250, cancellationToken);
                foreach (var point in reader.ReadNew()) progress?.Report(point);
            }
        }
        catch (OperationCanceledException)
        {
            run.Log("cancelled: the launcher and its ranks are killed");
            throw;
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);   // whatever ended the wait, no rank outlives it
        }
        await process.WaitForExitAsync(CancellationToken.None);
        foreach (var point in reader.ReadNew()) progress?.Report(point);
        string text;
        lock (output) text = output.ToString();
        File.WriteAllText(run.File(OutputFile), text);
        var missing = Enumerable.Range(0, launch.Ranks).Where(r => !File.Exists(JobHost.OutcomePath(run.Path, r))).ToList();
        if (missing.Count > 0)
            throw new JobFailedException($"The MPI job exited with code {process.ExitCode}; rank(s) {string.Join(", ", missing)} produced no outcome. " +
                $"Run folder: {run.Path}. Last output:\n{Tail(text)}");
        if (process.ExitCode != 0)
            // Every rank wrote its outcome and passed the final barrier, so the work completed; a failure after that
            // is in process teardown (seen with MPICH 4.0 over UCX tcp on the emulated cluster). Keep the result.
            run.Log($"warning: the launcher exited with code {process.ExitCode} after every rank finished (teardown). Last output:\n{Tail(text)}");
        var outcomes = Enumerable.Range(0, launch.Ranks).Select(r => ToolkitJson.Read<TOutcome>(JobHost.OutcomePath(run.Path, r))).ToArray();
        return (outcomes, text);
    }

    private static string Tail(string text) => string.Join('\n', text.Split('\n').TakeLast(30));
}
