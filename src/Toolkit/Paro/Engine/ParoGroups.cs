using Toolkit.Comm;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// The communicators and shard ranges of one rank in a PaRO job, and the hierarchical collectives built from them.
/// </summary>
/// <remarks>
/// Ranks form g = n/m groups of m consecutive ranks; rank r has local index l = r mod m and group q = r / m. A flat
/// buffer of P elements (padded so that n divides it) is sharded in two nested levels: the I-shard of rank r is the
/// l-th of m equal slices, and its G-shard is the q-th of g equal slices of that I-shard. Nesting is what lets a global
/// collective run as an intra-group step plus an inter-group step among same-l ranks (PaRO §3.2), and what makes the
/// optimizer shard of IIG "a nested slice of the group's parameter shard". Every global collective here is therefore
/// hierarchical: its inter-group part moves only 1/m of the data.
/// </remarks>
internal sealed class ParoGroups : IDisposable
{
    /// <summary>The layout of <paramref name="world"/>'s groups (built once by the communicator) for a flat buffer of
    /// <paramref name="elements"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The plan's group size is not the communicator's, or its groups are
    /// uneven.</exception>
    public ParoGroups(Communicator world, int groupSize, long elements)
    {
        var layout = world.Groups;
        if (!layout.IsUniform || layout.M != groupSize)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"must equal the communicator's group size: its {world.Size} ranks form {layout.G} group(s) " +
                    $"of {layout.M}{(layout.IsUniform ? "" : " or fewer (uneven)")} (world group " +
                        $"size {world.GroupSize})");
        World = world;
        M = groupSize;
        Intra = layout.Intra;
        Inter = layout.Inter;
        _layout = layout;
        Elements = elements;
        Padded = (elements + world.Size - 1) / world.Size * world.Size;
    }

    private readonly GroupLayout _layout;

    public Communicator World { get; }
    public Communicator Intra { get; }
    public Communicator Inter { get; }
    public int N => World.Size;
    public int M { get; }
    public int G => N / M;
    public int LocalRank => _layout.Local;
    public int GroupIndex => _layout.Group;

    /// <summary>Parameters before padding.</summary>
    public long Elements { get; }

    /// <summary>Elements after padding to a multiple of n.</summary>
    public long Padded { get; }

    /// <summary>The [offset, length) of this rank's slice of a flat buffer at <paramref name="level"/>.</summary>
    public (long Offset, long Length) Range(ShardLevel level) => level switch
    {
        ShardLevel.None => (0, Padded),
        ShardLevel.Intra => (LocalRank * (Padded / M), Padded / M),
        _ => (LocalRank * (Padded / M) + GroupIndex * (Padded / N), Padded / N),
    };

    /// <summary>The range of the <paramref name="inner"/>-level slice relative to the start of the
    /// <paramref name="outer"/>-level slice that contains it.</summary>
    public (long Offset, long Length) RangeWithin(ShardLevel outer, ShardLevel inner)
    {
        var (o, _) = Range(outer);
        var (i, length) = Range(inner);
        return (i - o, length);
    }

    /// <summary>Reduces a full buffer so that the slice at <paramref name="target"/> level holds the sum over all
    /// ranks.</summary>
    public void ReduceScatter(Tensor full, ShardLevel target)
    {
        if (target == ShardLevel.None) { AllReduce(full); return; }
        Intra.ReduceScatter(full);                                                   // I-slice: sum over the group
        var (offset, length) = Range(ShardLevel.Intra);
        using var slice = full.narrow(0, offset, length);
        if (target == ShardLevel.Intra) Inter.AllReduce(slice);                      // sum over groups, kept whole
        else Inter.ReduceScatter(slice);                                             // G-slice: sum over all ranks
    }

    /// <summary>Continues a reduction from a group-reduced I-slice (what gradient sharding at level I
    /// accumulates).</summary>
    public void ReduceIntraSlice(Tensor intraSlice, ShardLevel target)
    {
        if (target == ShardLevel.Intra) Inter.AllReduce(intraSlice);
        else Inter.ReduceScatter(intraSlice);
    }

    /// <summary>
    /// Sum over all ranks, every rank ending with the whole buffer: intra reduce-scatter, inter all-reduce of 1/m,
    /// intra all-gather; or the world's own algorithm when it is HO-Ring (the same decomposition, pipelined) or the
    /// leader-based hierarchical all-reduce.
    /// </summary>
    public void AllReduce(Tensor full)
    {
        if (World.Algorithm is CollectiveAlgorithm.HoRing or CollectiveAlgorithm.Hierarchical)
        {
            World.AllReduce(full);
            return;
        }
        Intra.ReduceScatter(full);
        var (offset, length) = Range(ShardLevel.Intra);
        using (var slice = full.narrow(0, offset, length)) Inter.AllReduce(slice);
        Intra.AllGather(full);
    }

    /// <summary>
    /// Rebuilds the <paramref name="target"/>-level slice of a buffer from the <paramref name="source"/>-level slices
    /// the ranks hold. <paramref name="buffer"/> is the target-level slice; this rank's source slice must already be in
    /// place.
    /// </summary>
    public void AllGather(Tensor buffer, ShardLevel source, ShardLevel target)
    {
        if (source <= target) return;
        if (source == ShardLevel.Global)
        {
            var (offset, length) = RangeWithin(target, ShardLevel.Intra);
            using var slice = buffer.narrow(0, offset, length);
            Inter.AllGather(slice);                                                  // G-slices -> I-slice
        }
        if (target == ShardLevel.None) Intra.AllGather(buffer);                     // I-slices -> whole
    }

    /// <summary>Nothing to release: the intra and inter communicators belong to the world communicator's
    /// layout.</summary>
    public void Dispose() { }
}
