namespace Toolkit.Comm;

/// <summary>
/// Point-to-point byte transport between the ranks of one communicator: what differs between the in-process and the MPI
/// backends. Collectives, byte accounting and rank mapping live once, in <see cref="Communicator"/>, on top of it.
/// </summary>
internal interface ITransport : IDisposable
{
    /// <summary>This rank within the transport's group.</summary>
    int Rank { get; }

    /// <summary>Number of ranks in the group.</summary>
    int Size { get; }

    /// <summary>Human-readable backend name (for logs and reports).</summary>
    string Backend { get; }

    /// <summary>Sends bytes to <paramref name="destination"/>; returns once the buffer may be reused.</summary>
    void Send(ReadOnlySpan<byte> data, int destination, int tag);

    /// <summary>Receives exactly <c>data.Length</c> bytes from <paramref name="source"/>.</summary>
    void Receive(Span<byte> data, int source, int tag);

    /// <summary>Sends and receives at once, so ring steps cannot deadlock.</summary>
    void SendReceive(ReadOnlySpan<byte> send, int destination, Span<byte> receive, int source, int tag);

    /// <summary>Blocks until every rank of the group has entered.</summary>
    void Barrier();

    /// <summary>Collective over the group: ranks with equal <paramref name="color"/> form a new transport, ordered by
    /// <paramref name="key"/> then rank.</summary>
    ITransport Split(int color, int key);

    /// <summary>
    /// Wakes every rank of the group that waits in a send, receive or barrier, after one of them failed, so a failure
    /// never hangs a job. In-process ranks then throw <see cref="OperationCanceledException"/>; for MPI it does
    /// nothing, because MPI's default error handler already ends every process of the job.
    /// </summary>
    void Abort();

    /// <summary>True when several threads of a rank may call the transport at once (in-process; MPI with
    /// MPI_THREAD_MULTIPLE).</summary>
    bool ConcurrentCalls { get; }

    /// <summary>The native implementation of a collective, if this backend has one (MPI); null otherwise.</summary>
    INativeCollectives? Native { get; }
}

/// <summary>A backend's own collectives (for MPI: the library's tuned algorithms), used when
/// <see cref="CollectiveAlgorithm.Native"/> is chosen.</summary>
internal interface INativeCollectives
{
    /// <summary>True when the backend can reduce elements of type <typeparamref name="T"/> natively.</summary>
    bool Supports<T>(ReduceOp op) where T : unmanaged;

    void AllReduce<T>(Span<T> data, ReduceOp op) where T : unmanaged;
    void AllGather<T>(Span<T> data, int chunkElements) where T : unmanaged;
    void ReduceScatter<T>(Span<T> data, int chunkElements, ReduceOp op) where T : unmanaged;
    void Broadcast<T>(Span<T> data, int root) where T : unmanaged;
}
