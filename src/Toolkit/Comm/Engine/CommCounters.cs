using System.Collections.Concurrent;

namespace Toolkit.Comm;

/// <summary>
/// Bytes one rank has sent, per operation, split into intra-group (same group of <c>m</c> ranks: a node, or an
/// NVLink/switch domain) and inter-group traffic. One instance per world rank, shared by every communicator split from
/// it, so totals include sub-communicator traffic. Thread-safe.
/// </summary>
public sealed class CommCounters
{
    private readonly ConcurrentDictionary<string, Cell> _cells = new(StringComparer.Ordinal);

    /// <summary>Adds one send of <paramref name="bytes"/> to the totals of <paramref name="operation"/>.</summary>
    public void Record(string operation, long bytes, bool intraGroup)
    {
        var cell = _cells.GetOrAdd(operation, _ => new Cell());
        if (intraGroup) Interlocked.Add(ref cell.Intra, bytes);
        else Interlocked.Add(ref cell.Inter, bytes);
        Interlocked.Increment(ref cell.Messages);
    }

    /// <summary>A consistent-enough copy of the totals (each operation's numbers are read atomically).</summary>
    public CommSnapshot Snapshot() => new(_cells.ToDictionary(
        kv => kv.Key,
        kv => new OperationTraffic(Interlocked.Read(ref kv.Value.Intra), Interlocked.Read(ref kv.Value.Inter),
            Interlocked.Read(ref kv.Value.Messages)),
        StringComparer.Ordinal));

    /// <summary>Clears all totals.</summary>
    public void Reset()
    {
        _cells.Clear();
        _times.Clear();
    }

    private readonly ConcurrentDictionary<string, TimeCell> _times = new(StringComparer.Ordinal);

    /// <summary>Adds <paramref name="seconds"/> of wall time to a named phase of a collective (HO-Ring's
    /// phases).</summary>
    public void RecordTime(string phase, double seconds)
    {
        var cell = _times.GetOrAdd(phase, _ => new TimeCell());
        lock (cell)
        {
            cell.Seconds += seconds;
            cell.Calls++;
        }
    }

    /// <summary>Wall time per phase so far: total seconds and the number of timed calls.</summary>
    public IReadOnlyDictionary<string, (double Seconds, long Calls)> Times() => _times.ToDictionary(
        kv => kv.Key, kv => { lock (kv.Value) return (kv.Value.Seconds, kv.Value.Calls); }, StringComparer.Ordinal);

    private sealed class TimeCell
    {
        public double Seconds;
        public long Calls;
    }

    private sealed class Cell
    {
        public long Intra;
        public long Inter;
        public long Messages;
    }
}

/// <summary>Bytes sent by one rank for one kind of operation.</summary>
/// <param name="IntraBytes">Bytes sent to ranks of the same group.</param>
/// <param name="InterBytes">Bytes sent to ranks of other groups.</param>
/// <param name="Messages">Number of point-to-point sends (or native calls).</param>
public sealed record OperationTraffic(long IntraBytes, long InterBytes, long Messages)
{
    /// <summary>Intra plus inter bytes.</summary>
    public long TotalBytes => IntraBytes + InterBytes;
}

/// <summary>Per-operation traffic of one rank at one moment.</summary>
/// <param name="Operations">Traffic by operation name (<c>allreduce</c>, <c>reduce_scatter</c>, <c>all_gather</c>,
/// <c>broadcast</c>, <c>send</c>).</param>
public sealed record CommSnapshot(IReadOnlyDictionary<string, OperationTraffic> Operations)
{
    /// <summary>Bytes sent inside the group, all operations.</summary>
    public long IntraBytes => Operations.Values.Sum(o => o.IntraBytes);

    /// <summary>Bytes sent across groups, all operations.</summary>
    public long InterBytes => Operations.Values.Sum(o => o.InterBytes);

    /// <summary>The traffic of one operation, zero if it never ran.</summary>
    public OperationTraffic this[string operation] => Operations.TryGetValue(operation,
        out var t) ? t : new OperationTraffic(0, 0, 0);

    /// <summary>The traffic between two snapshots (this minus <paramref name="earlier"/>).</summary>
    public CommSnapshot Since(CommSnapshot earlier) => new(Operations.ToDictionary(
        kv => kv.Key,
        kv => { var e = earlier[kv.Key]; return new OperationTraffic(kv.Value.IntraBytes - e.IntraBytes,
            kv.Value.InterBytes - e.InterBytes, kv.Value.Messages - e.Messages); },
        StringComparer.Ordinal));
}
