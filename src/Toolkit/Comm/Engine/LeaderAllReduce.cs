using System.Runtime.InteropServices;

namespace Toolkit.Comm;

/// <summary>
/// The classic hierarchical all-reduce: reduce inside each group to its first rank (a ring reduce-scatter, then every
/// rank sends its reduced slice to the leader), all-reduce among the g leaders on the whole buffer (one flow per group
/// crosses groups), broadcast inside each group. The baseline HO-Ring improves on: its inter-group phase moves S per
/// leader instead of S/m per rank.
/// </summary>
internal static class LeaderAllReduce
{
    public static void Run<T>(GroupLayout h, Span<T> data, ReduceOp op) where T : unmanaged
    {
        Ring.ReduceScatter(h.Intra, data, op, "allreduce");
        if (h.Local != 0)
        {
            var (offset, count) = Communicator.ShardRange(data.Length, h.M, h.Local);
            h.Intra.SendCounted<T>("allreduce", data.Slice(offset, count), destination: 0);
        }
        else
        {
            for (var j = 1; j < h.M; j++)
            {
                var (offset, count) = Communicator.ShardRange(data.Length, h.M, j);
                h.Intra.ReceiveInternal(data.Slice(offset, count), source: j);
            }
            Ring.ReduceScatter(h.Leaders, data, op, "allreduce");
            Ring.AllGather(h.Leaders, data, "allreduce");
        }
        h.Intra.Broadcast(data, root: 0, "allreduce");
    }
}
