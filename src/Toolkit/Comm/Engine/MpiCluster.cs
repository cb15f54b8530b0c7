namespace Toolkit.Comm;

/// <summary>Ranks as MPI processes started by <c>mpiexec</c> (MPICH hydra) or Slurm's <c>srun</c>.</summary>
public static class MpiCluster
{
    /// <summary>
    /// Initialises MPI and returns the world communicator. Call once per process; dispose it at the end to finalise
    /// MPI.
    /// </summary>
    /// <param name="groupSize">Ranks per group (m). Null: the number of ranks on this host, assuming ranks are placed
    /// host by host (hydra's default).</param>
    /// <exception cref="DllNotFoundException">No MPICH-ABI library is installed; the message says what to
    /// install.</exception>
    public static Communicator InitializeWorld(int? groupSize = null)
    {
        var transport = MpiTransport.InitializeWorld();
        var worldRanks = Enumerable.Range(0, transport.Size).ToArray();
        var counters = new CommCounters();
        var m = groupSize ?? LocalRanksFromLauncher() ?? RanksOnThisHost(transport, counters);
        if (m < 1 || transport.Size % m != 0)
            throw new ArgumentOutOfRangeException(nameof(groupSize), m,
                $"must be at least 1 and divide the number of MPI ranks ({transport.Size})");
        return new Communicator(transport, worldRanks, m, counters);
    }

    /// <summary>
    /// Ranks sharing this host as the launcher reports them (hydra's <c>MPI_LOCALNRANKS</c>, Slurm's
    /// <c>SLURM_NTASKS_PER_NODE</c>), or null. Used to size CPU thread pools so that co-located ranks do not
    /// oversubscribe the cores.
    /// </summary>
    public static int? LocalRanksFromLauncher()
    {
        foreach (var name in new[] { "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name)?.Split('(', ',')[0],
                out var n) && n > 0) return n;
        return null;
    }

    /// <summary>True when this process was started by an MPI launcher (hydra, Slurm, Open MPI).</summary>
    public static bool IsLaunchedByMpi =>
        Environment.GetEnvironmentVariable("PMI_RANK") is not null ||
        Environment.GetEnvironmentVariable("PMI_SIZE") is not null ||
        Environment.GetEnvironmentVariable("SLURM_PROCID") is not null ||
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK") is not null;

    private static int RanksOnThisHost(MpiTransport transport, CommCounters counters)
    {
        // Host names are exchanged once with an all-gather of fixed-size slots (not counted as job traffic).
        const int slot = 256;
        var names = new byte[slot * transport.Size];
        var mine = System.Text.Encoding.UTF8.GetBytes(MpiTransport.ProcessorName());
        mine.AsSpan(0, Math.Min(mine.Length, slot)).CopyTo(names.AsSpan(transport.Rank * slot));
        var probe = new Communicator(transport, Enumerable.Range(0, transport.Size).ToArray(), transport.Size,
            counters);
        probe.AllGather<byte>(names);
        counters.Reset();
        var hosts = Enumerable.Range(0, transport.Size).Select(r => Convert.ToHexString(names, r * slot,
            slot)).ToList();
        return hosts.Count(h => h == hosts[transport.Rank]);
    }
}
