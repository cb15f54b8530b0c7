using System.Diagnostics;
using System.Text;

namespace Toolkit.Tests.Support;

/// <summary>
/// A real Slurm cluster for one test class, started by the repository's scripts and removed after it:
/// <c>build/slurm-cluster.sh</c> (one node, localhost; no root needed) or <c>build/emulate-cluster.sh --slurm</c> (G
/// nodes in network namespaces with shaped links, slurmd in each; needs root). The script holds the cluster while its
/// command (<c>cat</c>) reads standard input; closing it ends the command and the script tears everything down. Sets
/// <c>SLURM_CONF</c> for this process (and so for the Slurm commands it starts) while the cluster is up.
/// </summary>
public sealed class SlurmCluster : IDisposable
{
    private readonly Process _script;
    private readonly StringBuilder _output = new();

    private SlurmCluster(string file, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true,
            RedirectStandardError = true, WorkingDirectory = Path.GetTempPath() };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _script = Process.Start(start)!;
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (_output) _output.AppendLine(line);
            var at = line.IndexOf("SLURM_CONF=", StringComparison.Ordinal);
            if (line.Contains("ready",
                StringComparison.Ordinal) && at >= 0) ready.TrySetResult(line[(at + "SLURM_CONF=".Length)..].Trim());
            if (line.StartsWith("emulate-cluster: namespaces ",
                StringComparison.Ordinal)) Prefix = line["emulate-cluster: namespaces ".Length..].Trim();
        }
        _script.OutputDataReceived += (_, e) => OnLine(e.Data);
        _script.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _script.BeginOutputReadLine();
        _script.BeginErrorReadLine();
        _script.Exited += (_,
            _) => ready.TrySetException(new InvalidOperationException(
                $"The Slurm cluster script ended before the cluster was ready:\n{Output}"));
        _script.EnableRaisingEvents = true;
        if (!ready.Task.Wait(TimeSpan.FromSeconds(90)))
        {
            Dispose();
            throw new TimeoutException($"The Slurm cluster was not ready within 90 s:\n{Output}");
        }
        Conf = ready.Task.Result;
        Environment.SetEnvironmentVariable("SLURM_CONF", Conf);
    }

    /// <summary>One node (localhost) with <paramref name="cpus"/> CPUs.</summary>
    public static SlurmCluster SingleNode(int cpus) =>
        new("bash", [Path.Combine(Repository.Root, "build", "slurm-cluster.sh"), "--cpus", $"{cpus}", "--", "cat"]);

    /// <summary><paramref name="nodes"/> emulated nodes of <paramref name="cpus"/> CPUs, links shaped to
    /// <paramref name="bandwidth"/> (needs root).</summary>
    public static SlurmCluster Emulated(int nodes, int cpus, string bandwidth = "1gbit") =>
        new("bash", [Path.Combine(Repository.Root, "build", "emulate-cluster.sh"), "--slurm", "--nodes", $"{nodes}",
            "--ranks-per-node", $"{cpus}",
            "--inter-bandwidth", bandwidth, "--verbose", "--", "cat"]);

    /// <summary>The cluster's slurm.conf.</summary>
    public string Conf { get; }

    /// <summary>The emulated cluster's namespace prefix (tk&lt;pid&gt;), or null for the single-node cluster.</summary>
    public string? Prefix { get; private set; }

    /// <summary>What the scripts printed.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Runs a Slurm command against the cluster.</summary>
    public (int ExitCode, string Output) Command(string command, params string[] arguments) =>
        Repository.Run(command, arguments, TimeSpan.FromSeconds(60), environment: new Dictionary<string,
            string> { ["SLURM_CONF"] = Conf });

    /// <summary>Closes the command's input: the scripts cancel what is left, stop the daemons and remove their files
    /// (and namespaces).</summary>
    public void Dispose()
    {
        Environment.SetEnvironmentVariable("SLURM_CONF", null);
        try
        {
            _script.StandardInput.Close();
            if (!_script.WaitForExit(TimeSpan.FromSeconds(60))) _script.Kill(entireProcessTree: true);
            _script.WaitForExit();
        }
        finally
        {
            _script.Dispose();
        }
    }
}
