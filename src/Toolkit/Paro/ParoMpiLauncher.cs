using System.Diagnostics;
using System.Text.Json;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Paro;

/// <summary>
/// Starts a PaRO job's ranks with <c>mpiexec -n N dotnet Toolkit.Cli.dll paro rank --run DIR</c>; each
/// rank reads the options from the run folder's config.json. While they run, metrics are read back
/// from the run folder and reported as progress.
/// </summary>
internal static class ParoMpiLauncher
{
    public static async Task<ParoTrainResult> RunAsync(ParoTrainOptions options, string runPath, IProgress<MetricPoint>? progress, CancellationToken cancellationToken)
    {
        var mpiexec = MpiLauncher.Find() ?? throw new InvalidOperationException("mpiexec was not found. " + MpiLibrary.MissingMessage());
        string[] rank = ["dotnet", ToolkitCli.Find(), "paro", "rank", "--run", runPath];
        var (file, arguments) = options.Emulate is { } shape
            ? ("bash", [.. Comm.EmulatedCluster.Parse(shape, options.InterBandwidth, options.InterLatency).Command(), .. rank])
            : (mpiexec, new[] { "-n", options.Ranks.ToString(System.Globalization.CultureInfo.InvariantCulture) }.Concat(rank).ToArray());
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {mpiexec}.");
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var reader = new RunReader(runPath);
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
            process.Kill(entireProcessTree: true);
            throw;
        }
        await process.WaitForExitAsync(cancellationToken);
        foreach (var point in reader.ReadNew()) progress?.Report(point);
        string Tail() { lock (output) return string.Join('\n', output.ToString().Split('\n').TakeLast(30)); }
        if (!File.Exists(Path.Combine(runPath, ParoTrainJob.ResultFile)))
            throw new InvalidOperationException($"The MPI job exited with code {process.ExitCode} without a result. Last output:\n{Tail()}");
        if (process.ExitCode != 0)
        {
            // Rank 0 writes the result only after every rank's outcome reached it, so training completed; a
            // failure after that is in process teardown (seen with MPICH 4.0 over UCX tcp on the emulated
            // cluster). Keep the result and record the exit status where the user will see it.
            File.AppendAllText(Path.Combine(runPath, RunDirectory.LogFile),
                $"{DateTimeOffset.UtcNow:O} warning: mpiexec exited with code {process.ExitCode} after the result was written (teardown). Last output:\n{Tail()}\n");
        }
        return ParoTrainJob.ReadResult(runPath);
    }

    /// <summary>The options an MPI rank runs with: the run folder's config.json.</summary>
    public static ParoTrainOptions ReadOptions(string runPath) =>
        JsonSerializer.Deserialize<ParoTrainOptions>(File.ReadAllText(Path.Combine(runPath, RunDirectory.ConfigFile)), RunJson.Options)
        ?? throw new InvalidDataException($"{runPath}/{RunDirectory.ConfigFile} holds no options.");
}
