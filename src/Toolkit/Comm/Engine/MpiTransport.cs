using System.Runtime.InteropServices;
using MPI;
using Toolkit.Runtime;

namespace Toolkit.Comm;

/// <summary>
/// Ranks as MPI processes, through MPI.NET's raw bindings (<see cref="Unsafe"/>) on tensor memory: no managed copies
/// and no serialisation. Messages above 1 GiB are split because MPI counts are 32-bit.
/// </summary>
internal sealed unsafe class MpiTransport : ITransport, INativeCollectives
{
    private const int MaxChunkBytes = 1 << 30;
    private static readonly IntPtr InPlace = new(-1);   // MPI_IN_PLACE in the MPICH ABI
    private readonly bool _ownsWorld;
    private int _comm;

    private MpiTransport(int comm, bool ownsWorld)
    {
        _comm = comm;
        _ownsWorld = ownsWorld;
        Check(Unsafe.MPI_Comm_rank(comm, out var rank), "MPI_Comm_rank");
        Check(Unsafe.MPI_Comm_size(comm, out var size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    public int Rank { get; }
    public int Size { get; }
    public string Backend => "mpi";
    public INativeCollectives? Native => this;

    /// <summary>True when MPI provided MPI_THREAD_MULTIPLE (threads of a process may call it at once).</summary>
    public bool ConcurrentCalls => _threadLevel == Unsafe.MPI_THREAD_MULTIPLE;

    private static int _threadLevel = -1;

    /// <summary>Initialises MPI (thread level MULTIPLE, so collectives may run on helper threads) and returns
    /// MPI_COMM_WORLD.</summary>
    public static MpiTransport InitializeWorld()
    {
        MpiLibrary.EnsureLoaded();
        Check(Unsafe.MPI_Initialized(out var initialized), "MPI_Initialized");
        var owns = initialized == 0;
        if (owns)
        {
            var argc = 0;
            byte** argv = null;
            Check(Unsafe.MPI_Init_thread(ref argc, ref argv, Unsafe.MPI_THREAD_MULTIPLE, out var provided),
                "MPI_Init_thread");
            if (provided < Unsafe.MPI_THREAD_SERIALIZED)
                throw new NotSupportedException(
                    $"The MPI library provides thread level {provided}; the toolkit needs MPI_THREAD_SERIALIZED or " +
                        $"better.");
            _threadLevel = provided;
        }
        else
        {
            Check(Unsafe.MPI_Query_thread(out var provided), "MPI_Query_thread");
            _threadLevel = provided;
        }
        return new MpiTransport(Unsafe.MPI_COMM_WORLD, owns);
    }

    /// <summary>This process's host name as MPI reports it.</summary>
    public static string ProcessorName()
    {
        var buffer = new byte[Unsafe.MPI_MAX_PROCESSOR_NAME + 1];
        var length = 0;
        Check(Unsafe.MPI_Get_processor_name(buffer, ref length), "MPI_Get_processor_name");
        return System.Text.Encoding.ASCII.GetString(buffer, 0, length);
    }

    public void Send(ReadOnlySpan<byte> data, int destination, int tag)
    {
        fixed (byte* p = data)
            for (var offset = 0; offset < data.Length || offset == 0; offset += MaxChunkBytes)
            {
                var count = Math.Min(MaxChunkBytes, data.Length - offset);
                Check(Unsafe.MPI_Send((IntPtr)(p + offset), count, Unsafe.MPI_BYTE, destination, tag, _comm),
                    "MPI_Send");
                if (data.Length == 0) break;
            }
    }

    public void Receive(Span<byte> data, int source, int tag)
    {
        fixed (byte* p = data)
            for (var offset = 0; offset < data.Length || offset == 0; offset += MaxChunkBytes)
            {
                var count = Math.Min(MaxChunkBytes, data.Length - offset);
                Check(Unsafe.MPI_Recv((IntPtr)(p + offset), count, Unsafe.MPI_BYTE, source, tag, _comm, out _),
                    "MPI_Recv");
                if (data.Length == 0) break;
            }
    }

    public void SendReceive(ReadOnlySpan<byte> send, int destination, Span<byte> receive, int source, int tag)
    {
        if (send.Length > MaxChunkBytes || receive.Length > MaxChunkBytes)
            throw new NotSupportedException(
                "A single ring step above 1 GiB is not supported; use more ranks or smaller buckets.");
        fixed (byte* s = send)
        fixed (byte* r = receive)
        {
            var requests = stackalloc int[2];
            Check(Unsafe.MPI_Irecv((IntPtr)r, receive.Length, Unsafe.MPI_BYTE, source, tag, _comm, out requests[0]),
                "MPI_Irecv");
            Check(Unsafe.MPI_Isend((IntPtr)s, send.Length, Unsafe.MPI_BYTE, destination, tag, _comm, out requests[1]),
                "MPI_Isend");
            WaitAll(requests, 2);
        }
    }

    /// <summary>
    /// Waits for requests by testing them (each test drives MPI's progress engine), giving the core away with
    /// sched_yield between tests after <see cref="SpinsBeforeYield"/> tries.
    /// </summary>
    /// <remarks>
    /// A blocking MPICH call polls without yielding, so on a machine with fewer cores than ranks the rank that has data
    /// to move waits for the time slices of ranks that only wait. Measured with <c>toolkit bench collectives --emulate
    /// 2x2 --inter-bandwidth 1gbit --sizes 64MiB</c> on 2 cores: ring 944 ms and HO-Ring 708 ms with MPI_Sendrecv, 904
    /// ms and 629 ms yielding after 10 tests. Sleeping instead (1 ms) freed the cores but stalled progress: UCX moves
    /// TCP and shared-memory data only inside MPI calls (HO-Ring 855 ms).
    /// </remarks>
    private static void WaitAll(int* requests, int count)
    {
        var statuses = new Unsafe.MPI_Status[count];
        for (var tries = 0; ; tries++)
        {
            Check(Unsafe.MPI_Testall(count, requests, out var done, statuses), "MPI_Testall");
            if (done != 0) return;
            if (tries >= SpinsBeforeYield) Thread.Yield();
        }
    }

    /// <summary>Tests of a request before each further test yields the core.</summary>
    private const int SpinsBeforeYield = 10;

    public void Barrier() => Check(Unsafe.MPI_Barrier(_comm), "MPI_Barrier");

    /// <inheritdoc/>
    public void Abort()
    {
        // Nothing to wake: a failing MPI process ends, and MPI's default error handler (MPI_ERRORS_ARE_FATAL)
        // and the launcher take every other rank of the job down with it.
    }

    public ITransport Split(int color, int key)
    {
        Check(Unsafe.MPI_Comm_split(_comm, color, key, out var child), "MPI_Comm_split");
        return new MpiTransport(child, ownsWorld: false);
    }

    public bool Supports<T>(ReduceOp op) where T : unmanaged => DataType<T>() != 0;

    public void AllReduce<T>(Span<T> data, ReduceOp op) where T : unmanaged
    {
        fixed (T* p = data)
            Check(Unsafe.MPI_Allreduce(InPlace, (IntPtr)p, data.Length, DataType<T>(), Op(op), _comm), "MPI_Allreduce");
    }

    public void AllGather<T>(Span<T> data, int chunkElements) where T : unmanaged
    {
        // Moving data needs no element type: gather bytes, so bfloat16 and half work too.
        var size = Marshal.SizeOf<T>();
        var (counts, displacements) = Layout(data.Length, size);
        fixed (T* p = data)
            Check(Unsafe.MPI_Allgatherv(InPlace, 0, Unsafe.MPI_BYTE, (IntPtr)p, counts, displacements, Unsafe.MPI_BYTE,
                _comm), "MPI_Allgatherv");
    }

    public void ReduceScatter<T>(Span<T> data, int chunkElements, ReduceOp op) where T : unmanaged
    {
        var (counts, displacements) = Layout(data.Length, 1);
        fixed (T* p = data)
            Check(Unsafe.MPI_Reduce_scatter(InPlace, (IntPtr)p, counts, DataType<T>(), Op(op), _comm),
                "MPI_Reduce_scatter");
        // In place, MPI leaves this rank's block at the start of the buffer; move it to its shard offset.
        data[..counts[Rank]].CopyTo(data.Slice(displacements[Rank], counts[Rank]));
    }

    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged
    {
        fixed (T* p = data)
            Check(Unsafe.MPI_Bcast((IntPtr)p, checked(data.Length * Marshal.SizeOf<T>()), Unsafe.MPI_BYTE, root,
                _comm), "MPI_Bcast");
    }

    public void Dispose()
    {
        if (_comm == Unsafe.MPI_COMM_WORLD)
        {
            // MPICH 4.0 over UCX's TCP transport can deadlock in MPI_Finalize (ranks that finished closing
            // their endpoints wait in the PMI barrier while their peers still flush towards them). The
            // emulated cluster sets TOOLKIT_MPI_SKIP_FINALIZE=1: every rank has passed a barrier, and the
            // process exits without finalising, which hydra accepts.
            if (_ownsWorld
                && System.Environment.GetEnvironmentVariable("TOOLKIT_MPI_SKIP_FINALIZE") != "1") Unsafe.MPI_Finalize();
        }
        else if (_comm != 0)
        {
            Unsafe.MPI_Comm_free(ref _comm);
        }
        _comm = 0;
    }

    /// <summary>Shard counts and offsets in units of <paramref name="scale"/> (1 for elements, the element size for
    /// bytes).</summary>
    private (int[] Counts, int[] Displacements) Layout(int length, int scale)
    {
        var counts = new int[Size];
        var displacements = new int[Size];
        for (var r = 0; r < Size; r++)
        {
            var (offset, count) = Communicator.ShardRange(length, Size, r);
            (displacements[r], counts[r]) = (checked(offset * scale), checked(count * scale));
        }
        return (counts, displacements);
    }

    private static int DataType<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? Unsafe.MPI_FLOAT :
        typeof(T) == typeof(double) ? Unsafe.MPI_DOUBLE :
        typeof(T) == typeof(int) ? Unsafe.MPI_INT :
        typeof(T) == typeof(long) ? Unsafe.MPI_LONG_LONG : 0;

    private static int Op(ReduceOp op) => op switch
    {
        ReduceOp.Sum => Unsafe.MPI_SUM,
        ReduceOp.Max => Unsafe.MPI_MAX,
        ReduceOp.Min => Unsafe.MPI_MIN,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction"),
    };

    private static void Check(int code, string call)
    {
        if (code != Unsafe.MPI_SUCCESS) throw new IOException($"{call} failed with MPI error code {code}.");
    }
}
