using System.Diagnostics;

namespace Toolkit.Comm;

/// <summary>
/// Measures all-reduce time on a communicator for a few message sizes and reports bus bandwidth (<c>2(n-1)/n * S /
/// t</c>, the NCCL-tests convention, comparable across rank counts).
/// </summary>
internal static class BandwidthProbe
{
    /// <summary>Times <paramref name="repeats"/> float32 all-reduces of each size (after one warm-up) on every rank;
    /// returns rank 0's view (identical on all ranks up to noise).</summary>
    public static IReadOnlyList<BandwidthSample> AllReduce(Communicator comm, IReadOnlyList<long> sizesInBytes,
        int repeats = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        var samples = new List<BandwidthSample>();
        foreach (var bytes in sizesInBytes)
        {
            var data = new float[checked((int)(bytes / sizeof(float)))];
            comm.AllReduce<float>(data);
            comm.Barrier();
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < repeats; i++) comm.AllReduce<float>(data);
            comm.Barrier();
            var seconds = clock.Elapsed.TotalSeconds / repeats;
            var busBytes = 2.0 * (comm.Size - 1) / comm.Size * data.Length * sizeof(float);
            samples.Add(new BandwidthSample(data.Length * sizeof(float), seconds, busBytes / seconds));
        }
        return samples;
    }

    /// <summary>
    /// The alpha-beta constants of a communicator's ring: per-message latency from tiny all-reduces and per-rank send
    /// bandwidth from a large one (up to 64 MiB), with the latency part removed. Times are the slowest rank's, so every
    /// rank returns the same values. A single rank has no link: (∞, 0).
    /// </summary>
    public static (double Bandwidth, double Latency) RingLink(Communicator comm, long bytes)
    {
        if (comm.Size == 1) return (double.PositiveInfinity, 0);
        var data = new float[Math.Min(bytes, 64L << 20) / sizeof(float)];
        comm.AllReduce<float>(data);   // warm-up
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (var i = 0; i < repeats; i++) comm.AllReduce<float>(data);
        var seconds = Slowest(comm, clock.Elapsed.TotalSeconds / repeats);
        var tiny = new float[1];
        clock.Restart();
        const int tinyRepeats = 100;
        for (var i = 0; i < tinyRepeats; i++) comm.AllReduce<float>(tiny);
        var steps = 2 * (comm.Size - 1);
        var latency = Slowest(comm, clock.Elapsed.TotalSeconds / tinyRepeats) / steps;
        var sent = 2.0 * (comm.Size - 1) / comm.Size * data.Length * sizeof(float);
        return (sent / Math.Max(1e-9, seconds - steps * latency), latency);
    }

    /// <summary>The largest of every rank's <paramref name="seconds"/> (a ring max-reduction, whatever algorithm the
    /// communicator is set to).</summary>
    internal static double Slowest(Communicator comm, double seconds)
    {
        var value = new[] { seconds };
        var algorithm = comm.Algorithm;
        comm.Algorithm = CollectiveAlgorithm.Ring;
        comm.AllReduce<double>(value, ReduceOp.Max);
        comm.Algorithm = algorithm;
        return value[0];
    }

    /// <summary>Runs <see cref="AllReduce"/> on <paramref name="ranks"/> in-process ranks.</summary>
    public static IReadOnlyList<BandwidthSample> InProcess(int ranks, IReadOnlyList<long> sizesInBytes,
        int repeats = 5) =>
        InProcessCluster.Run(ranks, ranks, comm => AllReduce(comm, sizesInBytes, repeats))[0];
}

/// <summary>One timed collective.</summary>
/// <param name="Bytes">Message size.</param>
/// <param name="Seconds">Mean time per call.</param>
/// <param name="BusBandwidth">Bus bandwidth in bytes per second.</param>
internal sealed record BandwidthSample(long Bytes, double Seconds, double BusBandwidth);
