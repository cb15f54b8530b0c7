using System.Text.Json.Serialization;

namespace Toolkit.Comm;

/// <summary>Which implementation a collective uses (<see cref="Communicator.Algorithm"/>).</summary>
public enum CollectiveAlgorithm
{
    /// <summary>Bandwidth-optimal ring over the communicator's point-to-point sends (every byte counted as
    /// sent).</summary>
    Ring,
    /// <summary>The backend's own collective (MPI's tuned algorithms). Traffic is recorded as the ring's byte count,
    /// since MPI does not report what it sent; falls back to <see cref="Ring"/> where the backend has none.</summary>
    Native,
    /// <summary>Leader-based all-reduce: reduce inside each group to its first rank, all-reduce among the leaders,
    /// broadcast inside each group. Reduce-scatter and all-gather run as in <see cref="HoRing"/>.</summary>
    Hierarchical,
    /// <summary>HO-Ring (PaRO-CC): intra-group reduce-scatter, m concurrent inter-group rings each on 1/m of the data,
    /// intra-group all-gather; pipelined chunk by chunk where that pays
    /// (<see cref="Communicator.Pipeline"/>).</summary>
    [JsonStringEnumMemberName("ho-ring")] HoRing,
}

/// <summary>
/// Whether HO-Ring's all-reduce overlaps its phases (<see cref="Communicator.Pipeline"/>): with the pipeline, each
/// phase runs on its own thread over chunks, so chunk c crosses groups while chunk c+1 is reduced inside the group.
/// </summary>
/// <remarks>
/// Overlap needs the phases to run truly concurrently. Measured on the 2-core test machine (64 MiB, 2 x 2 ranks,
/// <c>toolkit bench collectives --pipeline on|off</c>): under MPI the pipelined form took 154 ms against 104 ms
/// unpipelined on one host, and 746 ms against 654 ms on the emulated cluster with 1 Gbit/s links (with blocking
/// MPI_Sendrecv it was worse: 328 against 115 ms, 925 against 670 ms), because MPICH serialises the calls of a
/// process's threads behind one lock and every waiting thread polls; in-process ranks, 118 ms against 109 ms, because
/// 12 stage threads shared 2 cores. So <see cref="Auto"/> pipelines only in-process ranks, and only when the machine
/// has a core for each of every rank's three stage threads.
/// </remarks>
public enum HoRingPipeline
{
    /// <summary>Pipeline where it pays: in-process ranks with three cores per rank; never over MPI (see
    /// remarks).</summary>
    Auto,
    /// <summary>Always pipeline (messages above one <see cref="Communicator.PipelineChunkBytes"/>).</summary>
    On,
    /// <summary>The phases one after another, as the authors run them.</summary>
    Off,
}

/// <summary>Names of <see cref="CollectiveAlgorithm"/> values on command lines and in magics.</summary>
internal static class CollectiveAlgorithms
{
    /// <summary>native, ring, hierarchical, ho-ring.</summary>
    public static IReadOnlyList<string> Names { get; } = ["native", "ring", "hierarchical", "ho-ring"];

    /// <summary>Parses a name (case-insensitive; <c>horing</c> and <c>ho_ring</c> also work).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the valid ones.</exception>
    public static CollectiveAlgorithm Parse(string name) => name.Trim().ToLowerInvariant().Replace("_", "-") switch
    {
        "native" => CollectiveAlgorithm.Native,
        "ring" => CollectiveAlgorithm.Ring,
        "hierarchical" => CollectiveAlgorithm.Hierarchical,
        "ho-ring" or "horing" => CollectiveAlgorithm.HoRing,
        _ => throw new ArgumentException($"Unknown collective algorithm '{name}'. Valid: {string.Join(", ", Names)}."),
    };

    /// <summary>The command-line name of an algorithm.</summary>
    public static string Name(CollectiveAlgorithm algorithm) => algorithm switch
    {
        CollectiveAlgorithm.HoRing => "ho-ring",
        _ => algorithm.ToString().ToLowerInvariant(),
    };
}
