using System.Diagnostics;

namespace Toolkit.Comm;

/// <summary>What one rank of the collective benchmark measures (run under mpiexec, on the emulated cluster or not).</summary>
public static class CollectiveBenchmark
{
    /// <summary>
    /// Times every algorithm at every size on <paramref name="comm"/> (the slowest rank's mean over
    /// <paramref name="repeats"/> calls, after a warm-up), after probing the intra-group link. Every rank returns the same measurements.
    /// </summary>
    public static MeasuredCollectives Run(Communicator comm, IReadOnlyList<long> sizes, IReadOnlyList<CollectiveAlgorithm> algorithms, int repeats)
    {
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
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < repeats; i++) comm.AllReduce<float>(data);
                var seconds = BandwidthProbe.Slowest(comm, clock.Elapsed.TotalSeconds / repeats);
                var traffic = comm.Counters.Snapshot().Since(before);
                results.Add(new MeasuredCollective(CollectiveAlgorithms.Name(algorithm), bytes, seconds, CollectiveSimulator.BusBandwidth(comm.Size, bytes, seconds),
                    traffic.IntraBytes / repeats, traffic.InterBytes / repeats));
            }
        comm.Algorithm = CollectiveAlgorithm.Ring;
        return new MeasuredCollectives(comm.Size / comm.GroupSize, comm.GroupSize, intraBandwidth, intraLatency, results);
    }
}

/// <summary>Measured all-reduce timings on one topology.</summary>
/// <param name="Nodes">Groups (nodes).</param>
/// <param name="RanksPerNode">Ranks per group.</param>
/// <param name="IntraBandwidth">Measured per-rank bandwidth inside a node (bytes/s).</param>
/// <param name="IntraLatency">Measured per-message latency inside a node (s).</param>
/// <param name="Results">One row per algorithm and size.</param>
public sealed record MeasuredCollectives(int Nodes, int RanksPerNode, double IntraBandwidth, double IntraLatency, IReadOnlyList<MeasuredCollective> Results);

/// <summary>One measured all-reduce.</summary>
/// <param name="Algorithm">native, ring, hierarchical or ho-ring.</param>
/// <param name="Bytes">Message size.</param>
/// <param name="Seconds">Slowest rank's mean time per call.</param>
/// <param name="BusBandwidth">Bytes/s, NCCL-tests convention.</param>
/// <param name="IntraBytesPerCall">Bytes rank 0 sent inside its node per call (MPI's native: the ring's count).</param>
/// <param name="InterBytesPerCall">Bytes rank 0 sent to other nodes per call.</param>
public sealed record MeasuredCollective(string Algorithm, long Bytes, double Seconds, double BusBandwidth, long IntraBytesPerCall, long InterBytesPerCall);
