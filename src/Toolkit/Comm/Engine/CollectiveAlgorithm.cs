using System.Text.Json.Serialization;

namespace Toolkit.Comm;

/// <summary>Which implementation a collective uses (<see cref="Communicator.Algorithm"/>).</summary>
public enum CollectiveAlgorithm
{
    /// <summary>Bandwidth-optimal ring over the communicator's point-to-point sends (every byte counted as sent).</summary>
    Ring,
    /// <summary>The backend's own collective (MPI's tuned algorithms). Traffic is recorded as the ring's byte count, since MPI does not report what it sent; falls back to <see cref="Ring"/> where the backend has none.</summary>
    Native,
    /// <summary>Leader-based all-reduce: reduce inside each group to its first rank, all-reduce among the leaders, broadcast inside each group. Reduce-scatter and all-gather run as in <see cref="HoRing"/>.</summary>
    Hierarchical,
    /// <summary>HO-Ring (PaRO-CC): intra-group reduce-scatter, m concurrent inter-group rings each on 1/m of the data, intra-group all-gather, pipelined chunk by chunk so the phases overlap.</summary>
    [JsonStringEnumMemberName("ho-ring")] HoRing,
}

/// <summary>Names of <see cref="CollectiveAlgorithm"/> values on command lines and in magics.</summary>
public static class CollectiveAlgorithms
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
