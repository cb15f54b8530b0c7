using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Comm;

/// <summary>
/// Collectives on TorchSharp tensors, in place, on the tensor's own memory. CPU tensors must be contiguous; CUDA
/// tensors are staged through host memory (GPU-direct transports are out of scope).
/// </summary>
public static class TensorCollectives
{
    /// <summary>In-place all-reduce of a tensor.</summary>
    public static void AllReduce(this Communicator comm, Tensor tensor, ReduceOp op = ReduceOp.Sum) =>
        OnHost(tensor, t => Dispatch(t, new AllReduceAction(comm, op)));

    /// <summary>In-place reduce-scatter of a flat tensor: this rank's shard (<see cref="Communicator.ShardRange"/>)
    /// ends complete.</summary>
    public static void ReduceScatter(this Communicator comm, Tensor tensor, ReduceOp op = ReduceOp.Sum) =>
        OnHost(tensor, t => Dispatch(t, new ReduceScatterAction(comm, op)));

    /// <summary>In-place all-gather of a flat tensor whose shards (<see cref="Communicator.ShardRange"/>) are spread
    /// over the ranks.</summary>
    public static void AllGather(this Communicator comm, Tensor tensor) =>
        OnHost(tensor, t => Dispatch(t, new AllGatherAction(comm)));

    /// <summary>In-place broadcast of a tensor from <paramref name="root"/>.</summary>
    public static void Broadcast(this Communicator comm, Tensor tensor, int root) =>
        OnHost(tensor, t => Dispatch(t, new BroadcastAction(comm, root)));

    private static void OnHost(Tensor tensor, Action<Tensor> action)
    {
        if (tensor.device_type == DeviceType.CPU)
        {
            if (!tensor.is_contiguous())
                throw new ArgumentException("Collectives need a contiguous tensor; call .contiguous() first.",
                    nameof(tensor));
            action(tensor);
            return;
        }
        using var host = tensor.cpu().contiguous();
        action(host);
        tensor.copy_(host);
    }

    private static void Dispatch(Tensor t, ISpanAction action)
    {
        // Tensor.bytes is a span over the tensor's own storage (no copy) for CPU tensors.
        var bytes = t.bytes;
        switch (t.dtype)
        {
            case ScalarType.Float32: action.Run(MemoryMarshal.Cast<byte, float>(bytes)); break;
            case ScalarType.Float64: action.Run(MemoryMarshal.Cast<byte, double>(bytes)); break;
            case ScalarType.BFloat16: action.Run(MemoryMarshal.Cast<byte, BFloat16>(bytes)); break;
            case ScalarType.Float16: action.Run(MemoryMarshal.Cast<byte, Half>(bytes)); break;
            case ScalarType.Int32: action.Run(MemoryMarshal.Cast<byte, int>(bytes)); break;
            case ScalarType.Int64: action.Run(MemoryMarshal.Cast<byte, long>(bytes)); break;
            default: throw new NotSupportedException(
                $"Collectives on {t.dtype} tensors are not supported; use float32, float64, bfloat16, float16, int32 " +
                    $"or int64.");
        }
    }

    private interface ISpanAction { void Run<T>(Span<T> span) where T : unmanaged; }

    private sealed record AllReduceAction(Communicator Comm,
        ReduceOp Op) : ISpanAction { public void Run<T>(Span<T> s) where T : unmanaged => Comm.AllReduce(s, Op); }
    private sealed record ReduceScatterAction(Communicator Comm,
        ReduceOp Op) : ISpanAction { public void Run<T>(Span<T> s) where T : unmanaged => Comm.ReduceScatter(s, Op); }
    private sealed record AllGatherAction(Communicator Comm) : ISpanAction { public void Run<T>(Span<T> s) where T
        : unmanaged => Comm.AllGather(s); }
    private sealed record BroadcastAction(Communicator Comm,
        int Root) : ISpanAction { public void Run<T>(Span<T> s) where T : unmanaged => Comm.Broadcast(s, Root); }
}
