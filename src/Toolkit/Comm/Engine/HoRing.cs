using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Toolkit.Comm;

/// <summary>
/// HO-Ring (PaRO-CC, PaRO §3.3): an all-reduce over g groups of m ranks as an intra-group reduce-scatter, then m
/// concurrent inter-group rings (one per local index) each on 1/m of the data, then an intra-group all-gather. Per rank
/// it sends 2(m-1)/m·S inside the group and only 2(g-1)/g·S/m across groups, against 2(n-1)/n·S on a flat ring whose
/// slowest (inter-group) hop paces every step.
/// </summary>
/// <remarks>
/// <para>Pipelining (where <see cref="Communicator.Pipelines"/>; see <see cref="HoRingPipeline"/> for when it pays):
/// the authors separate the phases with barriers. Pipelined, the buffer is cut into chunks of at least
/// <see cref="Communicator.PipelineChunkBytes"/> (at most <see cref="MaxChunks"/>) and each phase runs on its own
/// thread, so chunk c crosses groups while chunk c+1 is reduced and chunk c-1 is gathered inside the group: intra and
/// inter traffic overlap. Unpipelined, each phase's wall time is recorded in <see cref="CommCounters.Times"/>. The
/// intra reduce-scatter and all-gather share the intra communicator concurrently, so they use different tags (messages
/// are matched by source and tag).</para>
/// <para>Reduce-scatter and all-gather are decomposed the same way (intra then inter, inter then intra) without
/// pipelining; because the result must be rank r's shard of the flat partition, the buffer is first permuted so that
/// each group member's shards are contiguous.</para>
/// </remarks>
internal static class HoRing
{
    private const int ReduceTag = Communicator.CollectiveTagValue - 1;

    /// <summary>Phase names in <see cref="CommCounters.Times"/> (unpipelined all-reduce only: pipelined phases
    /// overlap).</summary>
    public const string PhaseIntraReduceScatter = "ho-ring intra reduce-scatter",
        PhaseInterAllReduce = "ho-ring inter all-reduce", PhaseIntraAllGather = "ho-ring intra all-gather";

    /// <summary>At most this many chunks: every chunk pays each ring step's latency again, so a few large chunks
    /// overlap the phases without multiplying latency.</summary>
    public const int MaxChunks = 8;

    /// <summary>The pipeline's chunk count for a message: one per <paramref name="chunkBytes"/>, between 1 and
    /// <see cref="MaxChunks"/>.</summary>
    public static int Chunks(long bytes, long chunkBytes, int elements) => (int)Math.Clamp(bytes / chunkBytes, 1,
        Math.Min(MaxChunks, Math.Max(1, elements)));

    public static unsafe void AllReduce<T>(GroupLayout h, Span<T> data, ReduceOp op) where T : unmanaged
    {
        var chunks = h.Root.Pipelines ? Chunks((long)data.Length * sizeof(T), h.Root.PipelineChunkBytes,
            data.Length) : 1;
        if (chunks == 1)
        {
            var counters = h.Root.Counters;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            IntraReduceScatter(h, data, op);
            counters.RecordTime(PhaseIntraReduceScatter, clock.Elapsed.TotalSeconds);
            clock.Restart();
            InterAllReduce(h, data, op);
            counters.RecordTime(PhaseInterAllReduce, clock.Elapsed.TotalSeconds);
            clock.Restart();
            IntraAllGather(h, data);
            counters.RecordTime(PhaseIntraAllGather, clock.Elapsed.TotalSeconds);
            return;
        }
        fixed (T* pointer = data)
        {
            var (address, length) = ((IntPtr)pointer, data.Length);
            Span<T> Chunk(int c)
            {
                var (offset, count) = Communicator.ShardRange(length, chunks, c);
                return new Span<T>((T*)address + offset, count);
            }
            using var reduced = new BlockingCollection<int>();
            using var crossed = new BlockingCollection<int>();
            var failures = new ConcurrentQueue<Exception>();
            void Stage(Action body, BlockingCollection<int>? output)
            {
                try { body(); }
                catch (Exception e) { failures.Enqueue(e); h.Abort(); }
                finally { output?.CompleteAdding(); }
            }
            var first = new Thread(() => Stage(() => { for (var c = 0; c < chunks; c++) { IntraReduceScatter(h,
                Chunk(c), op); reduced.Add(c); } }, reduced)) { IsBackground = true,
                    Name = "ho-ring intra reduce-scatter" };
            var second = new Thread(() => Stage(()
                => { foreach (var c in reduced.GetConsumingEnumerable()) { InterAllReduce(h, Chunk(c),
                    op); crossed.Add(c); } }, crossed)) { IsBackground = true, Name = "ho-ring inter all-reduce" };
            first.Start();
            second.Start();
            Stage(() => { foreach (var c in crossed.GetConsumingEnumerable()) IntraAllGather(h, Chunk(c)); }, null);
            first.Join();
            second.Join();
            if (Failures.RootCause(failures) is { } failure) throw failure;
        }
    }

    /// <summary>Rank r ends with its flat shard (<see cref="Communicator.ShardRange"/> of n) summed over all ranks:
    /// intra, then inter reduce-scatter.</summary>
    public static void ReduceScatter<T>(GroupLayout h, Span<T> data, ReduceOp op) where T : unmanaged
    {
        var layout = new GroupedLayout(h, data.Length);
        var grouped = ArrayPool<T>.Shared.Rent(Math.Max(1, data.Length));
        try
        {
            var buffer = grouped.AsSpan(0, data.Length);
            layout.ToGrouped<T>(data, buffer);
            Ring.ReduceScatter(h.Intra, buffer, op, "reduce_scatter", partition: layout.Block);
            var (blockOffset, blockLength) = layout.Block(h.Local);
            Ring.ReduceScatter(h.Inter, buffer.Slice(blockOffset, blockLength), op, "reduce_scatter",
                partition: q => layout.SegmentInBlock(q, h.Local));
            var (own, count) = Communicator.ShardRange(data.Length, h.Root.Size, h.Root.Rank);
            buffer.Slice(layout.GroupedOffset(h.Group, h.Local), count).CopyTo(data.Slice(own, count));
        }
        finally
        {
            ArrayPool<T>.Shared.Return(grouped);
        }
    }

    /// <summary>Every rank ends with every flat shard: inter all-gather inside the block of this local index, then
    /// intra all-gather of the blocks.</summary>
    public static void AllGather<T>(GroupLayout h, Span<T> data) where T : unmanaged
    {
        var layout = new GroupedLayout(h, data.Length);
        var grouped = ArrayPool<T>.Shared.Rent(Math.Max(1, data.Length));
        try
        {
            var buffer = grouped.AsSpan(0, data.Length);
            var (own, count) = Communicator.ShardRange(data.Length, h.Root.Size, h.Root.Rank);
            data.Slice(own, count).CopyTo(buffer.Slice(layout.GroupedOffset(h.Group, h.Local), count));
            var (blockOffset, blockLength) = layout.Block(h.Local);
            Ring.AllGather(h.Inter, buffer.Slice(blockOffset, blockLength), "all_gather",
                partition: q => layout.SegmentInBlock(q, h.Local));
            Ring.AllGather(h.Intra, buffer, "all_gather", partition: layout.Block);
            layout.FromGrouped<T>(buffer, data);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(grouped);
        }
    }

    private static void IntraReduceScatter<T>(GroupLayout h, Span<T> chunk, ReduceOp op) where T : unmanaged =>
        Ring.ReduceScatter(h.Intra, chunk, op, "allreduce", ReduceTag);

    private static void InterAllReduce<T>(GroupLayout h, Span<T> chunk, ReduceOp op) where T : unmanaged
    {
        var (offset, count) = Communicator.ShardRange(chunk.Length, h.M, h.Local);
        var slice = chunk.Slice(offset, count);
        Ring.ReduceScatter(h.Inter, slice, op, "allreduce");
        Ring.AllGather(h.Inter, slice, "allreduce");
    }

    private static void IntraAllGather<T>(GroupLayout h, Span<T> chunk) where T : unmanaged =>
        Ring.AllGather(h.Intra, chunk, "allreduce");

    /// <summary>
    /// The flat shards of the root communicator reordered so that the shards of ranks with local index j (over all
    /// groups, in group order) form block j: the intra ring then moves whole blocks and the inter ring moves one shard
    /// of the block.
    /// </summary>
    private sealed class GroupedLayout
    {
        private readonly GroupLayout _h;
        private readonly int _length;
        private readonly int[,] _offset;   // [group, local] -> offset in the grouped buffer

        public GroupedLayout(GroupLayout h, int length)
        {
            (_h, _length) = (h, length);
            _offset = new int[h.G, h.M];
            var at = 0;
            for (var l = 0; l < h.M; l++)
                for (var g = 0; g < h.G; g++)
                {
                    _offset[g, l] = at;
                    at += Shard(g, l).Count;
                }
        }

        public int GroupedOffset(int group, int local) => _offset[group, local];

        public (int Offset, int Count) Block(int local)
        {
            var start = _offset[0, local];
            var end = local + 1 < _h.M ? _offset[0, local + 1] : _length;
            return (start, end - start);
        }

        public (int Offset, int Count) SegmentInBlock(int group, int local) => (_offset[group, local] - _offset[0,
            local], Shard(group, local).Count);

        public void ToGrouped<T>(ReadOnlySpan<T> flat, Span<T> grouped)
        {
            for (var g = 0; g < _h.G; g++)
                for (var l = 0; l < _h.M; l++)
                {
                    var (offset, count) = Shard(g, l);
                    flat.Slice(offset, count).CopyTo(grouped.Slice(_offset[g, l], count));
                }
        }

        public void FromGrouped<T>(ReadOnlySpan<T> grouped, Span<T> flat)
        {
            for (var g = 0; g < _h.G; g++)
                for (var l = 0; l < _h.M; l++)
                {
                    var (offset, count) = Shard(g, l);
                    grouped.Slice(_offset[g, l], count).CopyTo(flat.Slice(offset, count));
                }
        }

        private (int Offset, int Count) Shard(int group, int local) => Communicator.ShardRange(_length, _h.Root.Size,
            _h.RankOf(group, local));
    }
}
