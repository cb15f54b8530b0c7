using System.Diagnostics;

namespace Toolkit.Comm;

/// <summary>What one rank of the collective benchmark measures (run under mpiexec, on the emulated cluster or
/// not).</summary>
public static class CollectiveBenchmark
{
    /// <summary>
    /// Times every algorithm at every size on <paramref name="comm"/> (the slowest rank's mean over
    /// <paramref name="repeats"/> calls, after a warm-up), after probing the intra-group link. Every rank returns the
    /// same measurements.
    /// </summary>
    public static MeasuredCollectives Run(Communicator comm, IReadOnlyList<long> sizes,
        IReadOnlyList<CollectiveAlgorithm> algorithms, int repeats,
        HoRingPipeline pipeline = HoRingPipeline.Auto)
    {
        comm.Pipeline = pipeline;
        using var intra = comm.SplitWithinGroups(comm.GroupSize);
        var (intraBandwidth, intraLatency) = BandwidthProbe.RingLink(intra, sizes.Max());
        var results = new List<MeasuredCollective>();
        foreach (var algorithm in algorithms)
            foreach (var bytes in sizes)
            {
                comm.Algorithm = algorithm;
                var data = new float[bytes / sizeof(float)];
                comm.AllReduce<float>(data);   // warm-up (and hierarchy set-up)
                comm.Barrier();
                var before = comm.Counters.Snapshot();
                var timesBefore = comm.Counters.Times();
                var cpuBefore = ProcessCpu();
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < repeats; i++) comm.AllReduce<float>(data);
                var wall = clock.Elapsed.TotalSeconds;
                var cpu = ProcessCpu();
                var traffic = comm.Counters.Snapshot().Since(before);
                // every rank reduces the same phases in the same order
                var phases = new SortedDictionary<string, double>(StringComparer.Ordinal);
                foreach (var (phase, (total, calls)) in comm.Counters.Times().OrderBy(kv => kv.Key,
                    StringComparer.Ordinal))
                {
                    var earlier = timesBefore.GetValueOrDefault(phase);
                    if (calls > earlier.Calls) phases[phase] = BandwidthProbe.Slowest(comm,
                        (total - earlier.Seconds) / repeats);
                }
                var seconds = BandwidthProbe.Slowest(comm, wall / repeats);
                // CPU of every process that runs ranks (in-process ranks share one: rank 0 counts it), per call.
                var counted = comm.Backend != "inproc" || comm.Rank == 0;
                var used = new[] { counted ? (cpu.User - cpuBefore.User) / repeats : 0,
                    counted ? (cpu.System - cpuBefore.System) / repeats : 0 };
                comm.AllReduce<double>(used);
                results.Add(new MeasuredCollective(CollectiveAlgorithms.Name(algorithm), bytes, seconds,
                    CollectiveSimulator.BusBandwidth(comm.Size, bytes, seconds),
                    traffic.IntraBytes / repeats, traffic.InterBytes / repeats, phases, used[0], used[1],
                        (used[0] + used[1]) / seconds));
            }
        var pipelined = comm.Pipelines;
        comm.Algorithm = CollectiveAlgorithm.Ring;
        return new MeasuredCollectives(comm.Size / comm.GroupSize, comm.GroupSize, intraBandwidth, intraLatency,
            pipelined, Environment.ProcessorCount, results);
    }

    private static (double User, double System) ProcessCpu()
    {
        using var process = Process.GetCurrentProcess();
        return (process.UserProcessorTime.TotalSeconds, process.PrivilegedProcessorTime.TotalSeconds);
    }
}

/// <summary>Measured all-reduce timings on one topology.</summary>
/// <param name="Nodes">Groups (nodes).</param>
/// <param name="RanksPerNode">Ranks per group.</param>
/// <param name="IntraBandwidth">Measured per-rank bandwidth inside a node (bytes/s).</param>
/// <param name="IntraLatency">Measured per-message latency inside a node (s).</param>
/// <param name="HoRingPipelined">Whether HO-Ring's all-reduce pipelined its phases
/// (<see cref="Communicator.Pipelines"/>).</param>
/// <param name="Cores">Processor count of the machine rank 0 ran on.</param>
/// <param name="Results">One row per algorithm and size.</param>
public sealed record MeasuredCollectives(int Nodes, int RanksPerNode, double IntraBandwidth, double IntraLatency,
    bool HoRingPipelined, int Cores, IReadOnlyList<MeasuredCollective> Results);

/// <summary>One measured all-reduce.</summary>
/// <param name="Algorithm">native, ring, hierarchical or ho-ring.</param>
/// <param name="Bytes">Message size.</param>
/// <param name="Seconds">Slowest rank's mean time per call.</param>
/// <param name="BusBandwidth">Bytes/s, NCCL-tests convention.</param>
/// <param name="IntraBytesPerCall">Bytes rank 0 sent inside its node per call (MPI's native: the ring's count).</param>
/// <param name="InterBytesPerCall">Bytes rank 0 sent to other nodes per call.</param>
/// <param name="PhaseSeconds">Per call, the slowest rank's wall time in each phase (unpipelined HO-Ring: intra
/// reduce-scatter, inter all-reduce, intra all-gather).</param>
/// <param name="UserCpuSeconds">Per call, user CPU time of all the job's processes.</param>
/// <param name="SystemCpuSeconds">Per call, system (kernel) CPU time of all the job's processes: copies through
/// sockets, polling.</param>
/// <param name="CoresBusy">(user + system CPU) / wall time: how many cores the call kept busy on average.</param>
public sealed record MeasuredCollective(string Algorithm, long Bytes, double Seconds, double BusBandwidth,
    long IntraBytesPerCall, long InterBytesPerCall,
    IReadOnlyDictionary<string, double> PhaseSeconds, double UserCpuSeconds, double SystemCpuSeconds, double CoresBusy);
