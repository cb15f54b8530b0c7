namespace Toolkit.Comm;

/// <summary>
/// A communicator's members seen as groups of the world (ranks whose world rank / m is equal share a group, whatever
/// sub-communicator they are in): the intra-group communicator (this rank's group), the inter-group communicator (the
/// members with this rank's local index in every group), and the leaders' communicator (local index 0 of every group;
/// the other ranks share one they do not use). Built once per communicator, collectively, on first use
/// (<see cref="Communicator.Groups"/>); PaRO's shard layout and the hierarchical collectives both read it.
/// </summary>
public sealed class GroupLayout : IDisposable
{
    private readonly IReadOnlyList<IReadOnlyList<int>> _ranks;   // [group][local] -> rank in Root

    internal GroupLayout(Communicator root, Communicator intra, Communicator inter, Communicator leaders,
        IReadOnlyList<IReadOnlyList<int>> groups, int local, int group) =>
        (Root, Intra, Inter, Leaders, _ranks, Local, Group) = (root, intra, inter, leaders, groups, local, group);

    /// <summary>The communicator this layout describes.</summary>
    internal Communicator Root { get; }

    /// <summary>The members of this rank's group, in rank order.</summary>
    public Communicator Intra { get; }

    /// <summary>The members with this rank's local index, one per group, in group order.</summary>
    public Communicator Inter { get; }

    internal Communicator Leaders { get; }

    /// <summary>This rank's index inside its group (l).</summary>
    public int Local { get; }

    /// <summary>This rank's group (q), counted over the groups this communicator has members in.</summary>
    public int Group { get; }

    /// <summary>Members in this rank's group (m).</summary>
    public int M => Intra.Size;

    /// <summary>Groups this communicator has members in (g).</summary>
    public int G => _ranks.Count;

    /// <summary>True when every group has the same number of members: what PaRO's nested shards need.</summary>
    public bool IsUniform => _ranks.All(g => g.Count == _ranks[0].Count);

    /// <summary>True when the hierarchical algorithms apply: uniform groups, at least two, of at least two
    /// members.</summary>
    internal bool IsHierarchical => IsUniform && G >= 2 && M >= 2;

    /// <summary>The root communicator's rank of the member with local index <paramref name="local"/> in group
    /// <paramref name="group"/>.</summary>
    internal int RankOf(int group, int local) => _ranks[group][local];

    /// <summary>Wakes every waiting rank after a failure (<see cref="ITransport.Abort"/>).</summary>
    internal void Abort() => Root.Transport.Abort();

    /// <inheritdoc/>
    public void Dispose()
    {
        Intra.Dispose();
        Inter.Dispose();
        Leaders.Dispose();
    }
}
