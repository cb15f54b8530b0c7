using System.Buffers;
using System.Runtime.InteropServices;

namespace Toolkit.Comm;

/// <summary>
/// A group of ranks that exchange tensor memory: all-reduce, reduce-scatter, all-gather, broadcast, send/receive,
/// barrier, and splitting into sub-communicators. The same class runs over in-process ranks (threads) and over MPI
/// processes; only the byte transport differs.
/// </summary>
/// <remarks>
/// <para>Buffers are spans over the caller's memory (use <see cref="TensorCollectives"/> for tensors); collectives work
/// in place. Shards follow <see cref="ShardRange"/>: rank <c>r</c> owns elements <c>[offset, offset + count)</c> of a
/// buffer, with sizes differing by at most one element, so buffers need not divide by the number of ranks.</para>
/// <para>Every send is counted in <see cref="Counters"/>, classified intra-group or inter-group by the world ranks'
/// groups (<c>worldRank / GroupSize</c>). Ring collectives on n ranks send, per rank, S minus one shard for
/// reduce-scatter or all-gather and twice that for all-reduce.</para>
/// <para>Every rank must call the same collectives in the same order with the same lengths; user tags for
/// <see cref="Send{T}"/>/<see cref="Receive{T}"/> are in [0, <see cref="MaxUserTag"/>].</para>
/// </remarks>
public sealed class Communicator : IDisposable
{
    /// <summary>Largest tag available to <see cref="Send{T}"/> and <see cref="Receive{T}"/>.</summary>
    public const int MaxUserTag = 32000;
    private const int CollectiveTag = 32766;    // below MPI's guaranteed MPI_TAG_UB of 32767
    private const int ControlTag = 32767;

    private readonly ITransport _transport;
    private readonly int[] _worldRanks;

    internal Communicator(ITransport transport, int[] worldRanks, int groupSize, CommCounters counters)
    {
        _transport = transport;
        _worldRanks = worldRanks;
        GroupSize = groupSize;
        Counters = counters;
    }

    /// <summary>This rank, in [0, <see cref="Size"/>).</summary>
    public int Rank => _transport.Rank;

    /// <summary>Number of ranks.</summary>
    public int Size => _transport.Size;

    /// <summary>This rank's rank in the world communicator it was split from.</summary>
    public int WorldRank => _worldRanks[Rank];

    /// <summary>Ranks per group in the world (the <c>m</c> of PaRO): traffic between world ranks with equal
    /// <c>worldRank / GroupSize</c> counts as intra-group.</summary>
    public int GroupSize { get; }

    /// <summary>Traffic sent by this (world) rank, across all communicators split from its world.</summary>
    public CommCounters Counters { get; }

    /// <summary><c>inproc</c> or <c>mpi</c>.</summary>
    public string Backend => _transport.Backend;

    /// <summary>Which implementation collectives use. Default <see cref="CollectiveAlgorithm.Ring"/>.</summary>
    public CollectiveAlgorithm Algorithm { get; set; } = CollectiveAlgorithm.Ring;

    /// <summary>Whether HO-Ring's all-reduce pipelines its phases on helper threads. Default
    /// <see cref="HoRingPipeline.Auto"/>. Every rank must use the same value.</summary>
    public HoRingPipeline Pipeline { get; set; } = HoRingPipeline.Auto;

    /// <summary>True when HO-Ring's all-reduce will pipeline: <see cref="Pipeline"/>, with
    /// <see cref="HoRingPipeline.Auto"/> resolved as its documentation says.</summary>
    /// <exception cref="NotSupportedException"><see cref="HoRingPipeline.On"/> over an MPI library that does not
    /// provide MPI_THREAD_MULTIPLE.</exception>
    public bool Pipelines => Pipeline switch
    {
        HoRingPipeline.On => _transport.ConcurrentCalls ? true
            : throw new NotSupportedException(
                "HO-Ring's pipeline runs its phases on threads, and this MPI library does not provide " +
                    "MPI_THREAD_MULTIPLE: use --pipeline off or auto."),
        HoRingPipeline.Off => false,
        // a core for each rank's three stage threads
        _ => Backend == "inproc" && Environment.ProcessorCount >= 3 * Size,
    };

    /// <summary>Chunk size of HO-Ring's pipeline (default 1 MiB): messages of one chunk or less run its phases one
    /// after another. Every rank must use the same value.</summary>
    public int PipelineChunkBytes
    {
        get => _pipelineChunkBytes;
        set => _pipelineChunkBytes = value >= 64
            ? value : throw new ArgumentOutOfRangeException(nameof(PipelineChunkBytes), value,
                "must be at least 64 bytes");
    }

    private int _pipelineChunkBytes = 1 << 20;

    /// <summary>The world rank of each member, indexed by rank in this communicator.</summary>
    public IReadOnlyList<int> WorldRanks => _worldRanks;

    /// <summary>The shard of a buffer of <paramref name="length"/> elements that part <paramref name="index"/> of
    /// <paramref name="parts"/> owns.</summary>
    public static (int Offset, int Count) ShardRange(int length, int parts, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(parts, 1);
        if ((uint)index >= (uint)parts) throw new ArgumentOutOfRangeException(nameof(index), index,
            $"must be in [0, {parts})");
        int baseCount = length / parts, extra = length % parts;
        return (index * baseCount + Math.Min(index, extra), baseCount + (index < extra ? 1 : 0));
    }

    /// <summary>Sums (or maxes, mins) <paramref name="data"/> across ranks; every rank ends with the result.</summary>
    public void AllReduce<T>(Span<T> data, ReduceOp op = ReduceOp.Sum) where T : unmanaged
    {
        CheckReducible<T>();
        if (TryNative<T>(op) is { } native)
        {
            RecordNominal("allreduce", data.Length, Marshal.SizeOf<T>(), reduceScatter: true, allGather: true);
            native.AllReduce(data, op);
            return;
        }
        switch (Hierarchy())
        {
            case { } h when Algorithm == CollectiveAlgorithm.HoRing: HoRing.AllReduce(h, data, op); break;
            case { } h when Algorithm == CollectiveAlgorithm.Hierarchical: LeaderAllReduce.Run(h, data, op); break;
            default:
                Ring.ReduceScatter(this, data, op, "allreduce");
                Ring.AllGather(this, data, "allreduce");
                break;
        }
    }

    /// <summary>Reduces <paramref name="data"/> across ranks, leaving this rank's shard (<see cref="ShardRange"/>)
    /// complete; other elements are left partially reduced.</summary>
    public void ReduceScatter<T>(Span<T> data, ReduceOp op = ReduceOp.Sum) where T : unmanaged
    {
        CheckReducible<T>();
        if (TryNative<T>(op) is { } native)
        {
            RecordNominal("reduce_scatter", data.Length, Marshal.SizeOf<T>(), reduceScatter: true, allGather: false);
            native.ReduceScatter(data, ShardRange(data.Length, Size, Rank).Count, op);
            return;
        }
        if (Hierarchy() is { } h) HoRing.ReduceScatter(h, data, op);
        else Ring.ReduceScatter(this, data, op, "reduce_scatter");
    }

    /// <summary>Each rank contributes its shard (<see cref="ShardRange"/>) of <paramref name="data"/>; every rank ends
    /// with all shards.</summary>
    public void AllGather<T>(Span<T> data) where T : unmanaged
    {
        if (Algorithm == CollectiveAlgorithm.Native && _transport.Native is { } native)
        {
            RecordNominal("all_gather", data.Length, Marshal.SizeOf<T>(), reduceScatter: false, allGather: true);
            native.AllGather(data, ShardRange(data.Length, Size, Rank).Count);
            return;
        }
        if (Hierarchy() is { } h) HoRing.AllGather(h, data);
        else Ring.AllGather(this, data, "all_gather");
    }

    /// <summary>Copies <paramref name="data"/> from <paramref name="root"/> to every rank (pipelined chain: each rank
    /// but the last forwards the whole buffer once).</summary>
    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged => Broadcast(data, root, "broadcast");

    internal void Broadcast<T>(Span<T> data, int root, string name) where T : unmanaged
    {
        CheckRank(root, nameof(root));
        if (Size == 1) return;
        var bytes = MemoryMarshal.AsBytes(data);
        if (Algorithm == CollectiveAlgorithm.Native && _transport.Native is { } native)
        {
            native.Broadcast(data, root);
            if (Relative(Rank, root) < Size - 1) Record(name, bytes.Length, Next);
            return;
        }
        const int segment = 1 << 20;   // pipelining: the chain streams 1 MiB segments
        var position = Relative(Rank, root);
        for (var offset = 0; offset < bytes.Length || offset == 0; offset += segment)
        {
            var part = bytes.Slice(offset, Math.Min(segment, bytes.Length - offset));
            if (position > 0) _transport.Receive(part, Previous, CollectiveTag);
            if (position < Size - 1) SendCounted(name, part, Next, CollectiveTag);
            if (bytes.Length == 0) break;
        }
    }

    /// <summary>Sends <paramref name="data"/> to <paramref name="destination"/> with a user tag.</summary>
    public void Send<T>(ReadOnlySpan<T> data, int destination, int tag = 0) where T : unmanaged
    {
        CheckRank(destination, nameof(destination));
        CheckTag(tag);
        SendCounted("send", MemoryMarshal.AsBytes(data), destination, tag);
    }

    /// <summary>Receives exactly <c>data.Length</c> elements from <paramref name="source"/> with a user tag.</summary>
    public void Receive<T>(Span<T> data, int source, int tag = 0) where T : unmanaged
    {
        CheckRank(source, nameof(source));
        CheckTag(tag);
        _transport.Receive(MemoryMarshal.AsBytes(data), source, tag);
    }

    /// <summary>Blocks until every rank has called it.</summary>
    public void Barrier() => _transport.Barrier();

    /// <summary>Collective: ranks with equal <paramref name="color"/> form a new communicator, ordered by
    /// <paramref name="key"/> (then rank).</summary>
    public Communicator Split(int color, int key)
    {
        var child = _transport.Split(color, key);
        // Members learn each other's world ranks with an uncounted control exchange on the child.
        var worldRanks = new int[child.Size];
        worldRanks[child.Rank] = WorldRank;
        for (var step = 1; step < child.Size; step++)
        {
            int to = (child.Rank + step) % child.Size, from = (child.Rank - step + child.Size) % child.Size;
            child.SendReceive(MemoryMarshal.AsBytes(new ReadOnlySpan<int>(in worldRanks[child.Rank])), to,
                MemoryMarshal.AsBytes(new Span<int>(ref worldRanks[from])), from, ControlTag);
        }
        return new Communicator(child, worldRanks, GroupSize, Counters) { Algorithm = Algorithm, Pipeline = Pipeline,
            PipelineChunkBytes = PipelineChunkBytes };
    }

    /// <summary>The ranks of this rank's group: consecutive blocks of <paramref name="groupSize"/> ranks (intra-group
    /// communicator).</summary>
    public Communicator SplitWithinGroups(int groupSize)
    {
        CheckGroupSize(groupSize);
        return Split(Rank / groupSize, Rank);
    }

    /// <summary>The ranks with the same local rank in every group (<c>rank % groupSize</c>): the inter-group
    /// communicator.</summary>
    public Communicator SplitAcrossGroups(int groupSize)
    {
        CheckGroupSize(groupSize);
        return Split(Rank % groupSize, Rank);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _groups?.Dispose();
        _transport.Dispose();
    }

    private GroupLayout? _groups;

    /// <summary>
    /// This communicator's members grouped by world group, with the intra- and inter-group communicators: built once,
    /// collectively (every rank must first touch it at the same point, as any collective), and shared by PaRO's shard
    /// layout and the hierarchical collectives.
    /// </summary>
    public GroupLayout Groups => _groups ??= BuildGroups();

    /// <summary>The layout when the algorithm is hierarchical and the groups allow it; null means the ring (flat)
    /// path.</summary>
    private GroupLayout? Hierarchy() =>
        Algorithm is CollectiveAlgorithm.HoRing or CollectiveAlgorithm.Hierarchical
            && Groups.IsHierarchical ? Groups : null;

    private GroupLayout BuildGroups()
    {
        // groups[g][l] is the rank (in this communicator) with local index l in the g-th world group present here.
        var groups = _worldRanks.Select((w, r) => (Group: w / GroupSize,
            Rank: r)).GroupBy(x => x.Group).OrderBy(g => g.Key)
            .Select(g => (IReadOnlyList<int>)g.Select(x => x.Rank).ToList()).ToList();
        var groupIndex = groups.FindIndex(g => g.Contains(Rank));
        var local = groups[groupIndex].ToList().IndexOf(Rank);
        var intra = Split(groupIndex, Rank);
        var inter = Split(local, Rank);
        var leaders = Split(local == 0 ? 0 : 1, Rank);
        intra.Algorithm = inter.Algorithm = leaders.Algorithm = CollectiveAlgorithm.Ring;
        return new GroupLayout(this, intra, inter, leaders, groups, local, groupIndex);
    }

    internal ITransport Transport => _transport;

    internal const int CollectiveTagValue = CollectiveTag;

    private int Next => (Rank + 1) % Size;
    private int Previous => (Rank - 1 + Size) % Size;
    private int Relative(int rank, int root) => (rank - root + Size) % Size;

    /// <summary>One ring step: send to the next rank and receive from the previous one, counting the bytes
    /// sent.</summary>
    internal void SendReceiveCounted(string name, ReadOnlySpan<byte> send, Span<byte> receive, int tag = CollectiveTag)
    {
        Record(name, send.Length, Next);
        _transport.SendReceive(send, Next, receive, Previous, tag);
    }

    /// <summary>A counted point-to-point send under an operation's name (used inside collectives).</summary>
    internal void SendCounted<T>(string name, ReadOnlySpan<T> data, int destination,
        int tag = CollectiveTag) where T : unmanaged =>
        SendCounted(name, MemoryMarshal.AsBytes(data), destination, tag);

    /// <summary>A receive inside a collective.</summary>
    internal void ReceiveInternal<T>(Span<T> data, int source, int tag = CollectiveTag) where T : unmanaged =>
        _transport.Receive(MemoryMarshal.AsBytes(data), source, tag);

    private void SendCounted(string name, ReadOnlySpan<byte> data, int destination, int tag)
    {
        Record(name, data.Length, destination);
        _transport.Send(data, destination, tag);
    }

    private void Record(string name, long bytes, int destination) =>
        Counters.Record(name, bytes, _worldRanks[destination] / GroupSize == WorldRank / GroupSize);

    /// <summary>
    /// What the ring would send, recorded for native collectives (MPI does not report its own traffic): the ring's
    /// reduce-scatter sends every shard but this rank's, its all-gather every shard but the next rank's.
    /// </summary>
    private void RecordNominal(string name, int length, int elementSize, bool reduceScatter, bool allGather)
    {
        if (Size == 1) return;
        long elements = 0;
        if (reduceScatter) elements += length - ShardRange(length, Size, Rank).Count;
        if (allGather) elements += length - ShardRange(length, Size, Mod(Rank + 1)).Count;
        Record(name, elements * elementSize, Next);
    }

    private INativeCollectives? TryNative<T>(ReduceOp op) where T : unmanaged =>
        Algorithm == CollectiveAlgorithm.Native && _transport.Native is { } native
            && native.Supports<T>(op) ? native : null;

    private int Mod(int value) => ((value % Size) + Size) % Size;

    private static void CheckReducible<T>() where T : unmanaged
    {
        if (!Reduction.Supports<T>())
            throw new NotSupportedException(
                $"Reductions over {typeof(T).Name} are not supported; use float, double, int, long, Half or BFloat16.");
    }

    private void CheckRank(int rank, string name)
    {
        if ((uint)rank >= (uint)Size) throw new ArgumentOutOfRangeException(name, rank,
            $"must be a rank in [0, {Size})");
    }

    private void CheckGroupSize(int groupSize)
    {
        if (groupSize < 1 || Size % groupSize != 0)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"must divide the communicator size {Size}");
    }

    private static void CheckTag(int tag)
    {
        if ((uint)tag > MaxUserTag) throw new ArgumentOutOfRangeException(nameof(tag), tag,
            $"must be in [0, {MaxUserTag}]");
    }
}
