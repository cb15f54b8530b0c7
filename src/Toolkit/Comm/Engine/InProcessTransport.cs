using System.Buffers;

namespace Toolkit.Comm;

/// <summary>
/// Ranks as threads of one process. A send copies the payload into a pooled buffer and queues it in the receiver's
/// mailbox (eager protocol, so a send never waits for its receive and ring steps cannot deadlock); a receive waits for
/// the matching (source, tag) message and copies it out.
/// </summary>
internal sealed class InProcessTransport : ITransport
{
    private readonly Group _group;

    private InProcessTransport(Group group, int rank)
    {
        _group = group;
        Rank = rank;
    }

    public int Rank { get; }
    public int Size => _group.Size;
    public string Backend => "inproc";
    public INativeCollectives? Native => null;
    public bool ConcurrentCalls => true;

    /// <summary>Creates the transports of a new group of <paramref name="size"/> ranks, one per thread.</summary>
    public static InProcessTransport[] CreateGroup(int size)
    {
        var group = new Group(size, new CancellationTokenSource());
        return Enumerable.Range(0, size).Select(r => new InProcessTransport(group, r)).ToArray();
    }

    public void Send(ReadOnlySpan<byte> data, int destination, int tag)
    {
        CheckPeer(destination);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, data.Length));
        data.CopyTo(buffer);
        _group.Mailboxes[destination].Post(new Message(Rank, tag, buffer, data.Length));
    }

    public void Receive(Span<byte> data, int source, int tag)
    {
        CheckPeer(source);
        var message = _group.Mailboxes[Rank].Take(source, tag, _group.Aborted);
        try
        {
            if (message.Length != data.Length)
                throw new InvalidOperationException(
                    $"Rank {Rank} expected {data.Length} bytes from rank {source} (tag {tag}) but {message.Length} " +
                        $"arrived: the ranks disagree on the collective's arguments.");
            message.Buffer.AsSpan(0, message.Length).CopyTo(data);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(message.Buffer);
        }
    }

    public void SendReceive(ReadOnlySpan<byte> send, int destination, Span<byte> receive, int source, int tag)
    {
        Send(send, destination, tag);
        Receive(receive, source, tag);
    }

    public void Barrier() => _group.Barrier.SignalAndWait(_group.Aborted);

    public ITransport Split(int color, int key)
    {
        // Rendezvous through the shared group: every rank posts (color, key), then all read the table.
        var table = _group.SplitTable;
        table[Rank] = (color, key);
        Barrier();
        var members = Enumerable.Range(0, Size).Where(r => table[r].Color == color)
            .OrderBy(r => table[r].Key).ThenBy(r => r).ToList();
        var leader = members[0];
        if (Rank == leader) _group.NewGroups[leader] = new Group(members.Count, _group.AbortSource);
        Barrier();
        var group = _group.NewGroups[leader]!;
        Barrier();   // everyone has picked up its group before the slots are reused by the next split
        if (Rank == leader) _group.NewGroups[leader] = null;
        return new InProcessTransport(group, members.IndexOf(Rank));
    }

    /// <summary>Wakes every waiting rank with an error; used when one rank fails so the others do not hang.</summary>
    public void Abort() => _group.Abort();

    public void Dispose() { }

    private void CheckPeer(int peer)
    {
        if ((uint)peer >= (uint)Size)
            throw new ArgumentOutOfRangeException(nameof(peer), peer, $"must be a rank in [0, {Size})");
    }

    private readonly record struct Message(int Source, int Tag, byte[] Buffer, int Length);

    private sealed class Group
    {
        public Group(int size, CancellationTokenSource abort)
        {
            Size = size;
            AbortSource = abort;
            Mailboxes = Enumerable.Range(0, size).Select(_ => new Mailbox()).ToArray();
            Barrier = new Barrier(size);
            SplitTable = new (int, int)[size];
            NewGroups = new Group?[size];
        }

        public int Size { get; }
        public Mailbox[] Mailboxes { get; }
        public Barrier Barrier { get; }
        public (int Color, int Key)[] SplitTable { get; }
        public Group?[] NewGroups { get; }
        /// <summary>Shared by a world and every group split from it: one failing rank wakes them all.</summary>
        public CancellationTokenSource AbortSource { get; }
        public CancellationToken Aborted => AbortSource.Token;
        public void Abort() => AbortSource.Cancel();
    }

    private sealed class Mailbox
    {
        private readonly List<Message> _pending = [];

        public void Post(Message message)
        {
            lock (_pending)
            {
                _pending.Add(message);
                Monitor.PulseAll(_pending);
            }
        }

        public Message Take(int source, int tag, CancellationToken aborted)
        {
            lock (_pending)
            {
                while (true)
                {
                    // Messages from one source with one tag are taken in the order they were sent (MPI's non-overtaking
                    // rule).
                    var index = _pending.FindIndex(m => m.Source == source && m.Tag == tag);
                    if (index >= 0)
                    {
                        var message = _pending[index];
                        _pending.RemoveAt(index);
                        return message;
                    }
                    aborted.ThrowIfCancellationRequested();
                    Monitor.Wait(_pending, 100);
                }
            }
        }
    }
}
