namespace Toolkit.Comm;

/// <summary>
/// The embedded default: n ranks as dedicated threads of this process, no MPI needed (notebooks, laptops, tests). If
/// one rank throws, the others are woken from any wait and the first failure is rethrown, so a bad rank never hangs the
/// job.
/// </summary>
public static class InProcessCluster
{
    /// <summary>Runs <paramref name="body"/> once per rank, each on its own thread, and returns the per-rank results in
    /// rank order.</summary>
    /// <param name="ranks">Number of ranks (n).</param>
    /// <param name="groupSize">Ranks per group (m), which must divide <paramref name="ranks"/>; traffic inside a group
    /// counts as intra-group.</param>
    /// <param name="body">The per-rank program.</param>
    /// <param name="cancellationToken">Cancels waiting ranks (they observe it at their next communication).</param>
    public static Task<T[]> RunAsync<T>(int ranks, int groupSize, Func<Communicator, T> body,
        CancellationToken cancellationToken = default)
    {
        var communicators = Create(ranks, groupSize);
        var results = new T[ranks];
        var threads = new Thread[ranks];
        var failures = new Exception?[ranks];
        var done = new TaskCompletionSource<T[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var remaining = ranks;
        var registration = cancellationToken.Register(() => Abort(communicators));
        for (var r = 0; r < ranks; r++)
        {
            var rank = r;
            threads[r] = new Thread(() =>
            {
                try
                {
                    results[rank] = body(communicators[rank]);
                }
                catch (Exception e)
                {
                    failures[rank] = e;
                    Abort(communicators);
                }
                if (Interlocked.Decrement(ref remaining) == 0)
                {
                    registration.Dispose();
                    Complete(done, results, failures, cancellationToken);
                }
            }) { IsBackground = true, Name = $"toolkit-rank-{rank}" };
        }
        foreach (var t in threads) t.Start();
        return done.Task;
    }

    /// <summary>Synchronous convenience over <see cref="RunAsync{T}"/>.</summary>
    public static T[] Run<T>(int ranks, int groupSize, Func<Communicator, T> body) =>
        RunAsync(ranks, groupSize, body).GetAwaiter().GetResult();

    /// <summary>Creates the communicators of an in-process world; each must be driven by its own thread.</summary>
    public static Communicator[] Create(int ranks, int groupSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        if (groupSize < 1 || ranks % groupSize != 0)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"must be at least 1 and divide the number of ranks ({ranks})");
        var worldRanks = Enumerable.Range(0, ranks).ToArray();
        return InProcessTransport.CreateGroup(ranks)
            .Select(t => new Communicator(t, worldRanks, groupSize, new CommCounters()))
            .ToArray();
    }

    private static void Abort(Communicator[] communicators) => communicators[0].Transport.Abort();

    private static void Complete<T>(TaskCompletionSource<T[]> done, T[] results, Exception?[] failures,
        CancellationToken token)
    {
        var root = Failures.RootCause(failures.OfType<Exception>());
        if (root is OperationCanceledException && token.IsCancellationRequested) done.SetCanceled(token);
        else if (root is not null) done.SetException(root);
        else done.SetResult(results);
    }
}
