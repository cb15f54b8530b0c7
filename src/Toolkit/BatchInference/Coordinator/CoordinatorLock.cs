using System.Globalization;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// The one coordinator of a job folder: <c>coordinator.lock</c>, created exclusively, names its host, process id and
/// the process's start time. A second coordinator on the folder is refused while that process lives; a lock left by a
/// process that is gone from this host (killed, the machine restarted) is taken over. A lock from another host cannot
/// be checked from here: it is refused, and the message says how to clear it.
/// </summary>
internal sealed class CoordinatorLock : IDisposable
{
    private readonly string _path;

    private CoordinatorLock(string path) => _path = path;

    /// <summary>Takes the lock of <paramref name="folder"/>.</summary>
    /// <param name="folder">The job folder.</param>
    /// <param name="log">Told when a stale lock is taken over.</param>
    /// <exception cref="Jobs.JobFailedException">Another live coordinator holds the folder.</exception>
    public static CoordinatorLock Acquire(string folder, Action<string>? log = null)
    {
        var path = Path.Combine(folder, InferLayout.LockFile);
        var mine = new Holder(Environment.MachineName, Environment.ProcessId, StartTime(Environment.ProcessId));
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                    System.Text.Json.JsonSerializer.Serialize(file, mine, ToolkitJson.Compact);
                return new CoordinatorLock(path);
            }
            catch (IOException) when (File.Exists(path))
            {
                var holder = Read(path);
                if (holder is not null && (holder.Host != mine.Host || Alive(holder)))
                    throw new Jobs.JobFailedException(
                        $"{folder} is coordinated by process {holder.ProcessId} on {holder.Host} " +
                        $"({InferLayout.LockFile}): one coordinator per job folder. Stop that one first" +
                        (holder.Host == mine.Host ? "." : $", or, if {holder.Host} is gone, delete the lock file."));
                log?.Invoke(holder is null ? $"taking over an unreadable {InferLayout.LockFile}"
                    : $"taking over the lock of process {holder.ProcessId}, which is gone");
                File.Delete(path);
            }
        }
        throw new Jobs.JobFailedException($"{path}: another coordinator keeps taking the lock");
    }

    /// <summary>Whether the process a lock names is still the one that took it (a reused pid is not).</summary>
    private static bool Alive(Holder holder) =>
        StartTime(holder.ProcessId) is { } started && started == holder.Started;

    /// <summary>A process's start time in clock ticks since boot (from /proc), or null when it is gone; on systems
    /// without /proc, 0 while it exists.</summary>
    private static long? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); return 0; }
            catch (ArgumentException) { return null; }
        }
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // fields after the command (which may hold spaces) start after its closing parenthesis; start time is 22nd
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }

    private static Holder? Read(string path)
    {
        try { return System.Text.Json.JsonSerializer.Deserialize<Holder>(File.ReadAllText(path), ToolkitJson.Options); }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { return null; }
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose()
    {
        try { File.Delete(_path); } catch (IOException) { }
    }

    /// <summary>Who holds a lock.</summary>
    private sealed record Holder(string Host, int ProcessId, long? Started);
}
