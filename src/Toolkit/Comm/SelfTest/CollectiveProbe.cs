namespace Toolkit.Comm;

/// <summary>
/// A fixed battery of collectives on deterministic inputs, run by every rank of a communicator, recording each rank's
/// outputs and the bytes it sent. The test suite runs it on in-process ranks and, through
/// <see cref="CollectiveSelfTestJob"/>, on MPI processes and the emulated cluster, and checks both against one
/// reference. Inputs are small integers so every reduction is exact in float32, bfloat16 and float64.
/// </summary>
internal static class CollectiveProbe
{
    /// <summary>Buffer lengths: one element, lengths that do not divide by the rank count, and a larger one.</summary>
    public static readonly int[] Lengths = [1, 7, 1000, 4099];

    /// <summary>Element types exercised.</summary>
    public static readonly string[] Types = ["float32", "bfloat16", "float64", "int32"];

    /// <summary>The input of <paramref name="rank"/> at element <paramref name="index"/>.</summary>
    public static double Input(int rank, int index) => (rank + 1) * (index % 5 + 1) + index % 3;

    /// <summary>Runs every case on <paramref name="comm"/> and returns this rank's records.</summary>
    public static List<ProbeRecord> Run(Communicator comm)
    {
        var records = new List<ProbeRecord>();
        foreach (var type in Types)
            foreach (var length in Lengths)
            {
                records.Add(Case(comm, "allreduce_sum", type, length, b => Reduce(comm, b, ReduceOp.Sum, all: true)));
                records.Add(Case(comm, "allreduce_max", type, length, b => Reduce(comm, b, ReduceOp.Max, all: true)));
                records.Add(Case(comm, "reduce_scatter", type, length, b => Reduce(comm, b, ReduceOp.Sum, all: false)));
                records.Add(Case(comm, "all_gather", type, length, b => Gather(comm, b)));
                records.Add(Case(comm, "broadcast", type, length, b => Broadcast(comm, b)));
            }
        records.Add(Case(comm, "send_ring", "float32", 1000, b => SendRing(comm, b)));
        using (var within = comm.SplitWithinGroups(comm.GroupSize))
            records.Add(Case(comm, "within_groups_allreduce", "float32", 1000, b => Reduce(within, b, ReduceOp.Sum,
                all: true)));
        using (var across = comm.SplitAcrossGroups(comm.GroupSize))
            records.Add(Case(comm, "across_groups_allreduce", "float32", 1000, b => Reduce(across, b, ReduceOp.Sum,
                all: true)));
        return records;
    }

    private static ProbeRecord Case(Communicator comm, string name, string type, int length,
        Action<IProbeBuffer> action)
    {
        comm.Barrier();
        var buffer = IProbeBuffer.Create(type, length);
        for (var i = 0; i < length; i++) buffer[i] = Input(comm.WorldRank, i);
        var before = comm.Counters.Snapshot();
        action(buffer);
        var traffic = comm.Counters.Snapshot().Since(before);
        return new ProbeRecord(name, type, length, comm.WorldRank, buffer.ToArray(), traffic.IntraBytes,
            traffic.InterBytes);
    }

    private static void Reduce(Communicator comm, IProbeBuffer b, ReduceOp op, bool all) => b.Apply(new Reducer(comm,
        op, all));

    private static void Gather(Communicator comm, IProbeBuffer b)
    {
        var (offset, count) = Communicator.ShardRange(b.Length, comm.Size, comm.Rank);
        for (var i = 0; i < b.Length; i++) if (i < offset || i >= offset + count) b[i] = -1;   // must be overwritten
        b.Apply(new Gatherer(comm));
    }

    private static void Broadcast(Communicator comm, IProbeBuffer b)
    {
        var root = 1 % comm.Size;
        if (comm.Rank != root) for (var i = 0; i < b.Length; i++) b[i] = -1;
        b.Apply(new Broadcaster(comm, root));
    }

    private static void SendRing(Communicator comm, IProbeBuffer b)
    {
        // Even ranks send first, odd ranks receive first: a ring shift that works with any send protocol.
        var data = ((ProbeBuffer<float>)b).Data;
        var incoming = new float[data.Length];
        int next = (comm.Rank + 1) % comm.Size, previous = (comm.Rank - 1 + comm.Size) % comm.Size;
        if (comm.Size == 1) return;
        if (comm.Rank % 2 == 0) { comm.Send<float>(data, next, 7); comm.Receive<float>(incoming, previous, 7); }
        else { comm.Receive<float>(incoming, previous, 7); comm.Send<float>(data, next, 7); }
        incoming.CopyTo(data, 0);
    }

    private sealed record Reducer(Communicator Comm, ReduceOp Op, bool All) : IProbeAction
    {
        public void Run<T>(Span<T> s) where T
            : unmanaged { if (All) Comm.AllReduce(s, Op); else Comm.ReduceScatter(s, Op); }
    }

    private sealed record Gatherer(Communicator Comm) : IProbeAction { public void Run<T>(Span<T> s) where T
        : unmanaged => Comm.AllGather(s); }
    private sealed record Broadcaster(Communicator Comm,
        int Root) : IProbeAction { public void Run<T>(Span<T> s) where T : unmanaged => Comm.Broadcast(s, Root); }

    private interface IProbeAction { void Run<T>(Span<T> span) where T : unmanaged; }

    private interface IProbeBuffer
    {
        int Length { get; }
        double this[int index] { get; set; }
        void Apply(IProbeAction action);
        double[] ToArray();

        static IProbeBuffer Create(string type, int length) => type switch
        {
            "float32" => new ProbeBuffer<float>(length, v => (float)v, v => v),
            "bfloat16" => new ProbeBuffer<BFloat16>(length, v => (BFloat16)(float)v, v => v),
            "float64" => new ProbeBuffer<double>(length, v => v, v => v),
            "int32" => new ProbeBuffer<int>(length, v => (int)v, v => v),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown probe type"),
        };
    }

    private sealed class ProbeBuffer<T>(int length, Func<double, T> from, Func<T,
        double> to) : IProbeBuffer where T : unmanaged
    {
        public T[] Data { get; } = new T[length];
        public int Length => Data.Length;
        public double this[int index] { get => to(Data[index]); set => Data[index] = from(value); }
        public void Apply(IProbeAction action) => action.Run<T>(Data);
        public double[] ToArray() => Data.Select(to).ToArray();
    }
}

/// <summary>One rank's outcome of one probe case.</summary>
internal sealed record ProbeRecord(string Case, string Type, int Length, int WorldRank, double[] Values,
    long IntraBytes, long InterBytes);
