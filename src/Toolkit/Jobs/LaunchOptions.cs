using System.Text.Json.Serialization;
using Toolkit.Options;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Jobs;

/// <summary>Where the ranks of a job run.</summary>
public enum Launcher
{
    /// <summary>Ranks are threads of this process (the embedded default; no MPI).</summary>
    [JsonStringEnumMemberName("inproc")] InProcess,
    /// <summary>Ranks are processes started by <c>mpiexec</c> (MPICH hydra), on this host, the hosts hydra is given, or
    /// the emulated cluster.</summary>
    [JsonStringEnumMemberName("mpi")] Mpi,
    /// <summary>Ranks are Slurm tasks: <c>sbatch</c> of a generated script that runs <c>srun --mpi=pmi2</c>, or
    /// <c>srun</c> inside an allocation.</summary>
    [JsonStringEnumMemberName("slurm")] Slurm,
    /// <summary>
    /// Batch inference only: worker processes on this machine, children of the command, talking to the coordinator over
    /// gRPC on loopback, as many as the autoscaler keeps.
    /// </summary>
    [JsonStringEnumMemberName("local")] Local,
    /// <summary>
    /// Batch inference only: just the coordinator starts; workers join with <c>toolkit infer worker --coordinator
    /// ADDR</c>, on any machine that sees the job folder.
    /// </summary>
    [JsonStringEnumMemberName("external")] External,
}

/// <summary>How a Slurm job is started.</summary>
public enum SlurmSubmit
{
    /// <summary><c>srun</c> when this process runs inside a Slurm allocation (<c>SLURM_JOB_ID</c> is set), else
    /// <c>sbatch</c>.</summary>
    [JsonStringEnumMemberName("auto")] Auto,
    /// <summary>A batch job: <c>sbatch</c> of the generated script (kept in the run folder), followed with
    /// squeue/scontrol/sacct.</summary>
    [JsonStringEnumMemberName("sbatch")] Sbatch,
    /// <summary>A job step of the current allocation (<c>salloc</c>, or a notebook kernel running inside a
    /// job).</summary>
    [JsonStringEnumMemberName("srun")] Srun,
}

/// <summary>How and where a job's ranks start: shared by every distributed job.</summary>
public sealed partial record LaunchOptions
{
    /// <summary>Where the ranks run (<see cref="Jobs.Launcher"/>). Default inproc.</summary>
    [Option("Where ranks run: inproc (threads of this process, no MPI), mpi (processes under mpiexec; with " +
        "--emulate, on the emulated cluster), slurm (tasks of a Slurm job); for batch inference also local (worker " +
        "processes on this machine) and external (only the coordinator; workers join with toolkit infer worker).")]
    public Launcher Launcher { get; init; } = Launcher.InProcess;

    /// <summary>Ranks (n). Default 4.</summary>
    [Option("Ranks (n).", Alias = "np")]
    public int Ranks { get; init; } = 4;

    /// <summary>Ranks per group (m), dividing <see cref="Ranks"/>; traffic inside a group counts as intra-group.
    /// Default 2.</summary>
    [Option("Ranks per group (m), dividing --ranks; traffic inside a group counts as intra-group (PaRO's I level, " +
        "HO-Ring's intra level).")]
    public int GroupSize { get; init; } = 2;

    /// <summary>Run the MPI ranks on an emulated cluster of this shape (<c>GxM</c>; needs root): Ranks = G·M and
    /// GroupSize = M. Default none.</summary>
    [Option("Run the MPI ranks on an emulated cluster of G nodes with M ranks each (GxM, e.g. 2x2; needs root and " +
        "--launcher mpi).")]
    public string? Emulate { get; init; }

    /// <summary>Emulated link rate (tc spelling). Default 1gbit.</summary>
    [Option("Emulated link rate between nodes (tc spelling: 1gbit, 100mbit).")]
    public string InterBandwidth { get; init; } = "1gbit";

    /// <summary>Emulated link latency; applied where the kernel has netem. Default 0.2ms.</summary>
    [Option("Emulated link latency (applied only where the kernel has netem; results record whether it was).")]
    public string InterLatency { get; init; } = "0.2ms";

    /// <summary>Emulated cluster: shaped links per node (multi-rail, one NIC per GPU when equal to M); local rank i
    /// sends across nodes on link i mod K. Default 1.</summary>
    [Option("Emulated cluster: shaped links per node, 1..M (multi-rail, as with one NIC per GPU; local rank i " +
        "crosses nodes on link i mod K).")]
    public int NicsPerNode { get; init; } = 1;

    /// <summary>Folder for run folders. Default <see cref="RunDirectory.DefaultRoot"/> (<c>$TOOLKIT_RUNS_DIR</c>, else
    /// <c>runs</c>).</summary>
    [Option("Folder that holds run folders ($TOOLKIT_RUNS_DIR, else runs).", Name = "runs-dir")]
    public string RunsDirectory { get; init; } = RunDirectory.DefaultRoot;

    /// <summary>Slurm: nodes. Default <see cref="Ranks"/> / ranks per node.</summary>
    [Option("Slurm: nodes (default --ranks / --ranks-per-node, for batch inference 1; if given, nodes x " +
        "ranks-per-node must equal --ranks).")]
    public int? Nodes { get; init; }

    /// <summary>Slurm: ranks (tasks) per node. Default <see cref="GroupSize"/>, so that each node holds one
    /// group.</summary>
    [Option("Slurm: ranks (tasks) per node (default --group-size, so that the ranks of one node form one group; " +
        "for batch inference --ranks / --nodes).")]
    public int? RanksPerNode { get; init; }

    /// <summary>Slurm: GPUs per node (<c>--gpus-per-node</c>); 0 asks for none. Default 0.</summary>
    [Option("Slurm: GPUs per node (sbatch --gpus-per-node); 0 asks for none.")]
    public int GpusPerNode { get; init; }

    /// <summary>Slurm: partition, time limit, account, more sbatch/srun arguments.</summary>
    [OptionGroup] public SlurmResources Slurm { get; init; } = new();

    /// <summary>Slurm: how the job starts. Default auto (srun inside an allocation, else sbatch).</summary>
    [Option("Slurm: auto (srun inside an allocation, else sbatch), sbatch (a batch job; its script is kept in the " +
        "run folder) or srun (a step of the current allocation).")]
    public SlurmSubmit SlurmSubmit { get; init; } = SlurmSubmit.Auto;

    /// <summary>Slurm: the ranks per node in effect.</summary>
    [JsonIgnore]
    public int EffectiveRanksPerNode => RanksPerNode ?? GroupSize;

    /// <summary>Slurm: the nodes in effect.</summary>
    [JsonIgnore]
    public int EffectiveNodes => Nodes ?? Ranks / Math.Max(1, EffectiveRanksPerNode);

    /// <summary>The emulated cluster, if <see cref="Emulate"/> is set.</summary>
    [JsonIgnore]
    public Comm.EmulatedCluster? Cluster => Emulate is null ? null : Comm.EmulatedCluster.Parse(Emulate,
        InterBandwidth, InterLatency) with { NicsPerNode = NicsPerNode };

    /// <summary>The launchers that start a fixed number of ranks (every job); the others are batch
    /// inference's.</summary>
    public static IReadOnlyList<Launcher> RankLaunchers { get; } = [Launcher.InProcess, Launcher.Mpi, Launcher.Slurm];

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public LaunchOptions Validate()
    {
        if (Ranks < 1) throw new ArgumentOutOfRangeException(nameof(Ranks), Ranks, "must be at least 1");
        if (GroupSize < 1 || Ranks % GroupSize != 0) throw new ArgumentOutOfRangeException(nameof(GroupSize),
            GroupSize, $"must divide --ranks ({Ranks})");
        if (Cluster is { } cluster)
        {
            if (Launcher != Launcher.Mpi || cluster.Nodes * cluster.RanksPerNode != Ranks
                || cluster.RanksPerNode != GroupSize)
                throw new ArgumentOutOfRangeException(nameof(Emulate), Emulate,
                    $"needs --launcher mpi, --ranks {cluster.Nodes * cluster.RanksPerNode} and " +
                        $"--group-size {cluster.RanksPerNode}");
            _ = Units.Option(nameof(InterBandwidth), InterBandwidth, Units.ParseBitRate);
            _ = Units.Option(nameof(InterLatency), InterLatency, Units.ParseDuration);
            if (NicsPerNode < 1 || NicsPerNode > cluster.RanksPerNode)
                throw new ArgumentOutOfRangeException(nameof(NicsPerNode), NicsPerNode,
                    $"must be 1..{cluster.RanksPerNode} (the ranks per emulated node)");
        }
        else if (NicsPerNode != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(NicsPerNode), NicsPerNode,
                "shapes the emulated cluster's links: it needs --emulate GxM");
        }
        if (Launcher == Launcher.Slurm)
        {
            if (Emulate is not null)
                throw new ArgumentOutOfRangeException(nameof(Emulate), Emulate,
                    "emulates a cluster for --launcher mpi; to run Slurm on an emulated cluster, start one with " +
                        "build/emulate-cluster.sh --slurm");
            var perNode = EffectiveRanksPerNode;
            if (perNode < 1 || Ranks % perNode != 0)
                throw new ArgumentOutOfRangeException(nameof(RanksPerNode), perNode,
                    $"must be at least 1 and divide --ranks ({Ranks})");
            if (Nodes is < 1)
                throw new ArgumentOutOfRangeException(nameof(Nodes), Nodes,
                    "must be at least 1 (a Slurm job runs on one node or more)");
            if (Nodes is { } nodes && nodes * perNode != Ranks)
                throw new ArgumentOutOfRangeException(nameof(Nodes), nodes,
                    $"{nodes} nodes x {perNode} ranks per node is {nodes * perNode} ranks, but --ranks is {Ranks}: " +
                        $"set --ranks {nodes * perNode}");
            if (GpusPerNode < 0) throw new ArgumentOutOfRangeException(nameof(GpusPerNode), GpusPerNode,
                "must be 0 or more");
            Slurm.Validate();
        }
        else
        {
            var slurmOnly = new (string Name, bool Set)[]
            {
                (nameof(Nodes), Nodes is not null), (nameof(RanksPerNode), RanksPerNode is not null),
                    (nameof(GpusPerNode), GpusPerNode != 0),
                (Slurm.FirstSet ?? "", Slurm.FirstSet is not null), (nameof(SlurmSubmit),
                    SlurmSubmit != SlurmSubmit.Auto),
            };
            if (slurmOnly.FirstOrDefault(o => o.Set) is { Name: { } name })
                throw new ArgumentOutOfRangeException(name, $"is a Slurm option: add --launcher slurm");
        }
        return this;
    }
}

/// <summary>An options record that validates itself as a whole: front ends call it right after binding, before any work
/// starts.</summary>
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
