namespace Toolkit.Comm;

/// <summary>
/// A communicator seen as g groups of m ranks: its intra-group communicator (the m ranks of this
/// rank's group), its inter-group communicator (the g ranks with this rank's local index), and the
/// leaders' communicator (local index 0 of every group; the other ranks share one they do not use).
/// </summary>
internal sealed class Hierarchy : IDisposable
{
    private readonly IReadOnlyList<IReadOnlyList<int>> _ranks;   // [group][local] -> rank in Root

    public Hierarchy(Communicator root, Communicator intra, Communicator inter, Communicator leaders, IReadOnlyList<IReadOnlyList<int>> groups, int local, int group) =>
        (Root, Intra, Inter, Leaders, _ranks, Local, Group) = (root, intra, inter, leaders, groups, local, group);

    public Communicator Root { get; }
    public Communicator Intra { get; }
    public Communicator Inter { get; }
    public Communicator Leaders { get; }
    public int Local { get; }
    public int Group { get; }
    public int M => Intra.Size;
    public int G => Inter.Size;

    /// <summary>The root communicator's rank of the member with local index <paramref name="local"/> in group <paramref name="group"/>.</summary>
    public int RankOf(int group, int local) => _ranks[group][local];

    /// <summary>Wakes every waiting rank of an in-process job after a failure (MPI errors end the job anyway).</summary>
    public void Abort() => (Root.Transport as InProcessTransport)?.Abort();

    public void Dispose()
    {
        Intra.Dispose();
        Inter.Dispose();
        Leaders.Dispose();
    }
}
