using System.Text.Json.Serialization;
using Toolkit.Options;
using Toolkit.Runs;

namespace Toolkit.Jobs;

/// <summary>Where the ranks of a job run.</summary>
public enum Launcher
{
    /// <summary>Ranks are threads of this process (the embedded default; no MPI).</summary>
    [JsonStringEnumMemberName("inproc")] InProcess,
    /// <summary>Ranks are processes started by <c>mpiexec</c> (MPICH hydra), on this host, the hosts hydra is given, or the emulated cluster.</summary>
    [JsonStringEnumMemberName("mpi")] Mpi,
}

/// <summary>How and where a job's ranks start: shared by every distributed job.</summary>
public sealed record LaunchOptions
{
    /// <summary>inproc (threads of this process, the default) or mpi (processes under mpiexec).</summary>
    [Option("Where ranks run: inproc (threads of this process, no MPI) or mpi (processes under mpiexec; with --emulate, on the emulated cluster).")]
    public Launcher Launcher { get; init; } = Launcher.InProcess;

    /// <summary>Ranks (n). Default 4.</summary>
    [Option("Ranks (n).", Alias = "np")]
    public int Ranks { get; init; } = 4;

    /// <summary>Ranks per group (m), dividing <see cref="Ranks"/>; traffic inside a group counts as intra-group. Default 2.</summary>
    [Option("Ranks per group (m), dividing --ranks; traffic inside a group counts as intra-group (PaRO's I level, HO-Ring's intra level).")]
    public int GroupSize { get; init; } = 2;

    /// <summary>Run the MPI ranks on an emulated cluster of this shape (<c>GxM</c>; needs root): Ranks = G·M and GroupSize = M. Default none.</summary>
    [Option("Run the MPI ranks on an emulated cluster of G nodes with M ranks each (GxM, e.g. 2x2; needs root and --launcher mpi).")]
    public string? Emulate { get; init; }

    /// <summary>Emulated link rate (tc spelling). Default 1gbit.</summary>
    [Option("Emulated link rate between nodes (tc spelling: 1gbit, 100mbit).")]
    public string InterBandwidth { get; init; } = "1gbit";

    /// <summary>Emulated link latency; applied where the kernel has netem. Default 0.2ms.</summary>
    [Option("Emulated link latency (applied only where the kernel has netem; results record whether it was).")]
    public string InterLatency { get; init; } = "0.2ms";

    /// <summary>Folder for run folders. Default <see cref="RunDirectory.DefaultRoot"/> (<c>$TOOLKIT_RUNS_DIR</c>, else <c>runs</c>).</summary>
    [Option("Folder that holds run folders ($TOOLKIT_RUNS_DIR, else runs).", Name = "runs-dir")]
    public string RunsDirectory { get; init; } = RunDirectory.DefaultRoot;

    /// <summary>The emulated cluster, if <see cref="Emulate"/> is set.</summary>
    [JsonIgnore]
    public Comm.EmulatedCluster? Cluster => Emulate is null ? null : Comm.EmulatedCluster.Parse(Emulate, InterBandwidth, InterLatency);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public LaunchOptions Validate()
    {
        if (Ranks < 1) throw new ArgumentOutOfRangeException(nameof(Ranks), Ranks, "must be at least 1");
        if (GroupSize < 1 || Ranks % GroupSize != 0) throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, $"must divide --ranks ({Ranks})");
        if (Cluster is { } cluster)
        {
            if (Launcher != Launcher.Mpi || cluster.Nodes * cluster.RanksPerNode != Ranks || cluster.RanksPerNode != GroupSize)
                throw new ArgumentOutOfRangeException(nameof(Emulate), Emulate, $"needs --launcher mpi, --ranks {cluster.Nodes * cluster.RanksPerNode} and --group-size {cluster.RanksPerNode}");
            _ = Comm.Units.Option(nameof(InterBandwidth), InterBandwidth, Comm.Units.ParseBitRate);
            _ = Comm.Units.Option(nameof(InterLatency), InterLatency, Comm.Units.ParseDuration);
        }
        return this;
    }
}

/// <summary>An options record that validates itself as a whole: front ends call it right after binding, before any work starts.</summary>
public interface ICheckedOptions
{
    /// <summary>Throws <see cref="ArgumentException"/> (or a subclass) naming the first invalid option.</summary>
    void Check();
}

/// <summary>The options of a job that runs on ranks: its launch settings, and one validation of everything.</summary>
public interface IJobOptions : ICheckedOptions
{
    /// <summary>How and where the ranks start.</summary>
    LaunchOptions Launch { get; }
}
