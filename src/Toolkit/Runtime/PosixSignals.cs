using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>POSIX signals to other processes (.NET's <see cref="System.Diagnostics.Process.Kill()"/> only sends SIGKILL).</summary>
public static partial class PosixSignals
{
    /// <summary>SIGINT: what Ctrl+C sends (srun only prints its status on one; two within a second end the step).</summary>
    public const int Interrupt = 2;
    /// <summary>SIGKILL.</summary>
    public const int Kill = 9;
    /// <summary>SIGTERM: a polite stop (srun forwards it to its tasks and ends the step).</summary>
    public const int Terminate = 15;

    /// <summary>Sends <paramref name="signal"/> to process <paramref name="pid"/>; a process that is already gone is not an error.</summary>
    /// <exception cref="InvalidOperationException">kill(2) failed for another reason (the message has errno).</exception>
    public static void Send(int pid, int signal)
    {
        if (KillNative(pid, signal) != 0 && Marshal.GetLastPInvokeError() is var errno && errno != 3 /* ESRCH: already gone */)
            throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {errno}");
    }

    /// <summary>Sends SIGTERM to a running process and waits up to <paramref name="grace"/> for it to exit (the caller kills it if it has not).</summary>
    public static void TerminateAndWait(System.Diagnostics.Process process, TimeSpan grace)
    {
        if (process.HasExited) return;
        Send(process.Id, Terminate);
        process.WaitForExit(grace);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);
}
