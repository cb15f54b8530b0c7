using System.Diagnostics;
using System.Globalization;

namespace Toolkit.Jobs;

/// <summary>A Slurm job's state as the scheduler reports it.</summary>
/// <param name="State">Slurm's state name: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT,
/// NODE_FAIL, OUT_OF_MEMORY, PREEMPTED...</param>
/// <param name="Reason">Why it is pending or why it ended (Slurm's reason: Resources, Priority, PartitionTimeLimit,
/// NonZeroExitCode...), or null.</param>
/// <param name="Nodes">The nodes it runs on, or null.</param>
/// <param name="ExitCode">The batch script's exit code (Slurm's <c>code:signal</c>), when known.</param>
/// <param name="Source">Which command told: squeue, scontrol, sacct, or the exit-code file the batch script
/// writes.</param>
internal sealed record SlurmJobState(string State, string? Reason, string? Nodes, string? ExitCode, string Source)
{
    /// <summary>True once the job can no longer run.</summary>
    public bool IsFinal
        => State is not (
            "PENDING" or "RUNNING" or "CONFIGURING" or "COMPLETING" or "SUSPENDED" or "REQUEUED" or "RESIZING"
            or "SIGNALING" or "STAGE_OUT" or "REQUEUE_HOLD" or "REQUEUE_FED" or "RESV_DEL_HOLD");

    /// <summary>"pending (Resources)", "running on node[0-1]", "TIMEOUT (exit 0:15)".</summary>
    public override string ToString() => State switch
    {
        "PENDING" => $"pending ({Reason ?? "no reason given"})",
        "RUNNING" => $"running{(Nodes is { Length: > 0 } n ? $" on {n}" : "")}",
        _ => $"{State}{(Reason is { Length: > 0 } r && r != "None" ? $" ({r})" : "")}{(ExitCode is { } e ? $", " +
            $"exit {e}" : "")}",
    };
}

/// <summary>
/// Slurm's client commands (<c>sbatch</c>, <c>srun</c>, <c>squeue</c>, <c>scontrol</c>, <c>sacct</c>, <c>scancel</c>),
/// run as processes: the toolkit uses no Slurm library, so it works with any Slurm whose commands are on PATH (and
/// <c>SLURM_CONF</c>, if set, points them at the cluster).
/// </summary>
internal static class SlurmClient
{
    /// <summary>What to install when the commands are missing.</summary>
    public const string InstallHint
        = "Slurm's client commands were not found on PATH. On a cluster, load them (module load slurm) or run from a " +
            "login node; " +
        "to try Slurm on one machine: apt-get install slurm-client slurmctld slurmd munge, then " +
            "build/slurm-cluster.sh -- COMMAND.";

    /// <summary>The full path of a Slurm command, or null.</summary>
    public static string? Find(string command)
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator,
            StringSplitOptions.RemoveEmptyEntries);
        return path.Select(d => Path.Combine(d, command)).FirstOrDefault(File.Exists);
    }

    /// <summary>The full path of a Slurm command.</summary>
    /// <exception cref="FileNotFoundException">It is not installed; the message says what to do.</exception>
    public static string Require(string command)
        => Find(command) ?? throw new FileNotFoundException($"{command}: {InstallHint}", command);

    /// <summary>True when this process runs inside a Slurm allocation (salloc, sbatch, or a kernel started in a
    /// job).</summary>
    public static bool InsideAllocation => Environment.GetEnvironmentVariable("SLURM_JOB_ID") is { Length: > 0 };

    /// <summary>Runs a command to its end and returns its exit code, standard output and standard error.</summary>
    public static (int Code, string Output, string Error) Run(string command, IEnumerable<string> arguments,
        TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(Require(command)) { RedirectStandardOutput = true,
            RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {command}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, output.Result,
                $"{command} did not answer within {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds:0} s");
        }
        return (process.ExitCode, output.Result, error.Result.Trim());
    }

    /// <summary>
    /// The job's state: from <c>squeue</c> while it is queued or running, then <c>scontrol show job</c> (finished jobs
    /// stay there for MinJobAge, 300 s by default), then <c>sacct</c> (when accounting is enabled), else null.
    /// </summary>
    public static SlurmJobState? Query(string jobId)
    {
        var (code, output, _) = Run("squeue", ["-h", "-j", jobId, "-o", "%T|%r|%N"], TimeSpan.FromSeconds(30));
        if (code == 0 && output.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() is { } line)
        {
            var f = line.Split('|');
            if (f.Length >= 3 && f[0].Length > 0) return new(f[0], NullIfNone(f[1]), NullIfNone(f[2]), null, "squeue");
        }
        (code, output, _) = Run("scontrol", ["show", "job", "-o", jobId], TimeSpan.FromSeconds(30));
        if (code == 0 && ParseScontrol(output) is { } fromScontrol) return fromScontrol;
        if (Find("sacct") is null) return null;
        (code, output, _) = Run("sacct", ["-n", "-X", "-P", "-j", jobId, "-o", "State,Reason,NodeList,ExitCode"],
            TimeSpan.FromSeconds(30));
        return code == 0 ? ParseSacct(output) : null;
    }

    /// <summary>Parses one line of <c>scontrol show job -o</c> (space-separated Key=Value pairs).</summary>
    public static SlurmJobState? ParseScontrol(string text)
    {
        var fields = text.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key,
                g => g.First()[1]);
        return fields.TryGetValue("JobState", out var state)
            ? new(state, NullIfNone(fields.GetValueOrDefault("Reason")),
                NullIfNone(fields.GetValueOrDefault("NodeList")), fields.GetValueOrDefault("ExitCode"), "scontrol")
            : null;
    }

    /// <summary>Parses <c>sacct -n -X -P -o State,Reason,NodeList,ExitCode</c>.</summary>
    public static SlurmJobState? ParseSacct(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        var f = line?.Split('|');
        if (f is null || f.Length < 4 || f[0].Length == 0) return null;
        var state = f[0].Split(' ')[0];   // "CANCELLED by 0"
        return new(state, NullIfNone(f[1]), NullIfNone(f[2]), f[3], "sacct");
    }

    /// <summary>Cancels a job (or a step, <c>JOB.STEP</c>); a job that has already ended is not an error.</summary>
    public static void Cancel(string jobId) => Run("scancel", [jobId], TimeSpan.FromSeconds(30));

    /// <summary>Splits extra arguments at spaces, keeping double-quoted parts together.</summary>
    public static IReadOnlyList<string> SplitArguments(string? text)
    {
        var result = new List<string>();
        if (string.IsNullOrWhiteSpace(text)) return result;
        var current = new System.Text.StringBuilder();
        var (quoted, any) = (false, false);
        foreach (var c in text)
        {
            if (c == '"') { quoted = !quoted; any = true; }
            else if (char.IsWhiteSpace(c) && !quoted)
            {
                if (any) result.Add(current.ToString());
                current.Clear();
                any = false;
            }
            else { current.Append(c); any = true; }
        }
        if (quoted) throw new FormatException($"Unbalanced double quote in --slurm-args \"{text}\".");
        if (any) result.Add(current.ToString());
        return result;
    }

    /// <summary>Quotes a word for a bash script.</summary>
    public static string ShellQuote(string word) =>
        word.Length > 0 && word.All(c
            => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c)) ? word : "'" + word.Replace("'",
                "'\\''") + "'";

    private static string? NullIfNone(string? value)
        => value is null or "" or "(null)" or "None" or "(None)" ? null : value;

    internal static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
