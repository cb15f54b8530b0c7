using System.Diagnostics;
using System.Globalization;

namespace Toolkit.BatchInference;

/// <summary>
/// A worker as a child process (<c>toolkit infer worker</c>), as the coordinator's process pool and a worker rank
/// start it: its output goes to <c>workers/&lt;id&gt;.log</c> and its process id to <c>workers/&lt;id&gt;.pid</c> in
/// the job folder.
/// </summary>
internal static class WorkerProcess
{
    /// <summary>Starts worker <paramref name="worker"/> (its <c>Id</c> names the files) for the job in
    /// <paramref name="folder"/>; the log writer must outlive the process (lines can arrive after it exited).</summary>
    public static (Process Process, StreamWriter Output) Start(string folder, InferWorkerOptions worker,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var command = Jobs.RankEntryPoint.Command();
        var logs = Directory.CreateDirectory(Path.Combine(folder, "workers")).FullName;
        var (process, output) = Runtime.ChildProcess.StartLogged(command[0],
            [.. command.Skip(1), .. Jobs.ChildCommands.Of(Jobs.ChildCommands.InferWorker, worker)],
            Path.Combine(logs, $"{worker.Id}.log"), environment);
        File.WriteAllText(Path.Combine(logs, $"{worker.Id}.pid"), process.Id.ToString(CultureInfo.InvariantCulture));
        return (process, output);
    }

    /// <summary>How a worker process ended, for the log: killed by signal N, or exited with code N.</summary>
    public static string Ending(int exitCode) => exitCode > 128 ? $"killed by signal {exitCode - 128}"
        : exitCode < 0 ? "killed" : $"exited with code {exitCode}";

    /// <summary>The last line worker <paramref name="id"/> wrote to its log (its error, when it failed).</summary>
    public static string LastWords(string folder, string id) =>
        Lines(folder, id).LastOrDefault() ?? "(nothing)";

    /// <summary>The non-empty lines of worker <paramref name="id"/>'s log (read while it may still be
    /// written).</summary>
    public static IReadOnlyList<string> Lines(string folder, string id)
    {
        var file = Path.Combine(folder, "workers", $"{id}.log");
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries
                | StringSplitOptions.TrimEntries);
        }
        catch (IOException e) { return [$"(its log {file} could not be read: {e.Message})"]; }
    }
}
