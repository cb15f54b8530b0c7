using System.Diagnostics;
using System.Text;

namespace Toolkit.Runtime;

/// <summary>
/// Child processes the toolkit starts (MPI launchers, srun, batch-inference workers and coordinators): one way to start
/// them with standard output and error merged line by line into a sink, and one way to run a launcher to its end while
/// following the job.
/// </summary>
internal static class ChildProcess
{
    /// <summary>
    /// Starts <paramref name="file"/> with <paramref name="arguments"/>; every line it writes to standard output or
    /// error goes to <paramref name="line"/> (called from reader threads, possibly after the process exited).
    /// </summary>
    /// <exception cref="InvalidOperationException">The process could not be started.</exception>
    public static Process Start(string file, IEnumerable<string> arguments, Action<string> line,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true,
            RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) line(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) line(e.Data); };
        try
        {
            if (!process.Start()) throw new InvalidOperationException($"Could not start {file}.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {file}: {e.Message}", e);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Starts a process whose output is appended to <paramref name="logFile"/>; the writer is returned so that
    /// it lives as long as lines can arrive.</summary>
    public static (Process Process, StreamWriter Log) StartLogged(string file, IEnumerable<string> arguments,
        string logFile, IReadOnlyDictionary<string, string>? environment = null)
    {
        var log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        try
        {
            return (Start(file, arguments, text =>
            {
                lock (log)
                    try { log.WriteLine(text); }
                    // a line after the owner closed the log: the process is being torn down
                    catch (ObjectDisposedException) { }
            }, environment), log);
        }
        catch
        {
            log.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs a launcher (mpiexec, the emulated cluster's script, srun) to its end: <paramref name="tick"/> runs every
    /// <paramref name="interval"/> while it runs (to follow the job), and its merged output is written to
    /// <paramref name="outputFile"/> however the wait ends. When the wait ends early (cancelled, or
    /// <paramref name="tick"/> threw), no process of the launcher outlives the call: a <paramref name="gracefulStop"/>
    /// launcher first gets SIGTERM and 10 s to end its ranks itself (srun ends its step on every node that way; a kill
    /// would only end the local process tree), then it and its descendants are killed. The wait for its last output is
    /// bounded (10 s).
    /// </summary>
    /// <returns>The exit code and the output.</returns>
    public static async Task<(int ExitCode, string Output)> RunLauncherAsync(string file,
        IReadOnlyList<string> arguments, string outputFile, TimeSpan interval,
        Action tick, bool gracefulStop, CancellationToken cancellationToken)
    {
        var output = new StringBuilder();
        using var process = Start(file, arguments, text => { lock (output) output.AppendLine(text); });
        try
        {
            while (!process.HasExited)
            {
                await Task.Delay(interval, cancellationToken);
                tick();
            }
        }
        finally
        {
            try
            {
                if (!process.HasExited)
                {
                    // Its descendants, found now: once the launcher exits they belong to init, and one holding the
                    // output pipe would stall the wait.
                    var tree = PosixSignals.Descendants(process.Id);
                    if (gracefulStop) PosixSignals.TerminateAndWait(process, TimeSpan.FromSeconds(10));
                    if (!process.HasExited) process.Kill(entireProcessTree: true);
                    PosixSignals.KillSurvivors(tree);
                }
            }
            catch (Exception e) when (
                e is InvalidOperationException or IOException or UnauthorizedAccessException
                    or System.ComponentModel.Win32Exception)
            {
                lock (output) output.AppendLine($"(stopping the launcher: {e.Message})");
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }   // already gone
            }
            using (var drain = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
                // also waits for the output to be read to its end
                try { await process.WaitForExitAsync(drain.Token); }
                catch (OperationCanceledException) { lock (output) output.AppendLine(
                    "(output cut: a process the launcher left behind still holds it)"); }
            lock (output) File.WriteAllText(outputFile, output.ToString());
        }
        lock (output) return (process.HasExited ? process.ExitCode : -1, output.ToString());
    }
}
