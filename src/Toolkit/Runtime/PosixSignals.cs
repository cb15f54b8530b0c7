using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>POSIX signals to other processes (.NET's <see cref="System.Diagnostics.Process.Kill()"/> only sends
/// SIGKILL).</summary>
internal static partial class PosixSignals
{
    /// <summary>SIGINT: what Ctrl+C sends (srun only prints its status on one; two within a second end the
    /// step).</summary>
    public const int Interrupt = 2;
    /// <summary>SIGKILL.</summary>
    public const int Kill = 9;
    /// <summary>SIGTERM: a polite stop (srun forwards it to its tasks and ends the step).</summary>
    public const int Terminate = 15;

    /// <summary>Sends <paramref name="signal"/> to process <paramref name="pid"/>; a process that is already gone is
    /// not an error.</summary>
    /// <exception cref="InvalidOperationException">kill(2) failed for another reason (the message has
    /// errno).</exception>
    public static void Send(int pid, int signal)
    {
        if (KillNative(pid,
            signal) != 0 && Marshal.GetLastPInvokeError() is var errno && errno != 3 /* ESRCH: already gone */)
            throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {errno}");
    }

    /// <summary>Sends SIGTERM to a running process and waits up to <paramref name="grace"/> for it to exit (the caller
    /// kills it if it has not).</summary>
    public static void TerminateAndWait(System.Diagnostics.Process process, TimeSpan grace)
    {
        if (process.HasExited) return;
        Send(process.Id, Terminate);
        process.WaitForExit(grace);
    }

    /// <summary>
    /// The processes descended from <paramref name="pid"/> now, each with its start time (from <c>/proc</c>), so that
    /// they can still be found once <paramref name="pid"/> has exited and they were handed to init.
    /// </summary>
    public static IReadOnlyList<(int Pid, long StartTime)> Descendants(int pid)
    {
        var parents = new Dictionary<int, List<(int, long)>>();
        if (!Directory.Exists("/proc")) return [];   // no procfs: only the launcher's own tree kill applies
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
            if (int.TryParse(Path.GetFileName(directory), out var child) && Stat(child) is { } stat)
                (parents.TryGetValue(stat.Parent, out var list) ? list : parents[stat.Parent] = []).Add((child,
                    stat.StartTime));
        var found = new List<(int, long)>();
        var pending = new Queue<int>([pid]);
        while (pending.TryDequeue(out var parent))
            foreach (var (child, start) in parents.GetValueOrDefault(parent) ?? [])
            {
                found.Add((child, start));
                pending.Enqueue(child);
            }
        return found;
    }

    /// <summary>SIGKILLs each of <paramref name="processes"/> that still runs with the same start time (a reused pid is
    /// left alone).</summary>
    public static void KillSurvivors(IEnumerable<(int Pid, long StartTime)> processes)
    {
        foreach (var (pid, start) in processes)
            if (Stat(pid) is { } now && now.StartTime == start) Send(pid, Kill);
    }

    /// <summary>The parent pid and start time (clock ticks since boot) of a process, or null when it is gone.</summary>
    private static (int Parent, long StartTime)? Stat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            // after "pid (comm) ": state ppid ... starttime is the 20th
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(fields[19],
                System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (
            e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException
                or ArgumentOutOfRangeException or OverflowException) { return null; }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);
}
