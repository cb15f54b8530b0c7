using System.Buffers;
using System.Runtime.InteropServices;

namespace Toolkit.Comm;

/// <summary>A partition of a buffer into the parts a ring moves: part i is [Offset, Offset + Count).</summary>
internal delegate (int Offset, int Count) Partition(int part);

/// <summary>
/// Ring reduce-scatter and all-gather (Patarasuk and Yuan 2009) on a communicator's counted point-to-point steps, for
/// any partition of the buffer into one part per rank.
/// </summary>
internal static class Ring
{
    /// <summary>
    /// At step s rank r sends part (r-1-s) and receives part (r-2-s), reducing it into its copy; after n-1 steps part r
    /// has passed through every rank and is complete here.
    /// </summary>
    public static void ReduceScatter<T>(Communicator c, Span<T> data, ReduceOp op, string name,
        int tag = Communicator.CollectiveTagValue, Partition? partition = null) where T : unmanaged
    {
        if (c.Size == 1) return;
        var length = data.Length;
        partition ??= i => Communicator.ShardRange(length, c.Size, i);
        var largest = Enumerable.Range(0, c.Size).Max(i => partition(i).Count);
        var scratch = ArrayPool<T>.Shared.Rent(Math.Max(1, largest));
        try
        {
            for (var step = 0; step < c.Size - 1; step++)
            {
                var (sendOffset, sendCount) = partition(Mod(c, c.Rank - 1 - step));
                var (receiveOffset, receiveCount) = partition(Mod(c, c.Rank - 2 - step));
                var incoming = scratch.AsSpan(0, receiveCount);
                c.SendReceiveCounted(name, MemoryMarshal.AsBytes(data.Slice(sendOffset, sendCount)),
                    MemoryMarshal.AsBytes(incoming), tag);
                Reduction.Apply(data.Slice(receiveOffset, receiveCount), incoming, op);
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(scratch);
        }
    }

    /// <summary>At step s rank r forwards part (r-s) and receives part (r-1-s) straight into place.</summary>
    public static void AllGather<T>(Communicator c, Span<T> data, string name,
        int tag = Communicator.CollectiveTagValue, Partition? partition = null) where T : unmanaged
    {
        var length = data.Length;
        partition ??= i => Communicator.ShardRange(length, c.Size, i);
        for (var step = 0; step < c.Size - 1; step++)
        {
            var (sendOffset, sendCount) = partition(Mod(c, c.Rank - step));
            var (receiveOffset, receiveCount) = partition(Mod(c, c.Rank - 1 - step));
            c.SendReceiveCounted(name, MemoryMarshal.AsBytes(data.Slice(sendOffset, sendCount)),
                MemoryMarshal.AsBytes(data.Slice(receiveOffset, receiveCount)), tag);
        }
    }

    private static int Mod(Communicator c, int value) => ((value % c.Size) + c.Size) % c.Size;
}
