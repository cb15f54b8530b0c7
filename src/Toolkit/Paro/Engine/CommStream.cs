using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// A rank's communication stream: one thread that runs the collectives given to it one after another, in the order they
/// were given, while the rank's own thread computes (what a CUDA stream of NCCL calls does for FSDP). Every rank gives
/// its stream the same collectives in the same order, so they pair up across ranks; the rank's thread issues no
/// collective of its own until it has waited for the stream to drain, so the communicator is never used by two of a
/// rank's threads at once (MPI_THREAD_SERIALIZED is enough).
/// </summary>
internal sealed class CommStream : IDisposable
{
    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> _queue = [];
    private readonly Thread _thread;
    private readonly List<Task> _pending = [];

    public CommStream(string name)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Queues <paramref name="work"/> (a collective and what it writes); the task completes when it has
    /// run.</summary>
    public Task Enqueue(Action work)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add((work, done));
        _pending.Add(done.Task);
        return done.Task;
    }

    /// <summary>Waits for everything queued so far, then rethrows the first failure unless <paramref name="rethrow"/>
    /// is false (a step being abandoned).</summary>
    public void Drain(bool rethrow = true)
    {
        var pending = _pending.ToList();
        _pending.Clear();
        Exception? first = null;
        foreach (var task in pending)
        {
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                first ??= e;
            }
        }
        if (first is not null && rethrow) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }

    private void Run()
    {
        foreach (var (work, done) in _queue.GetConsumingEnumerable())
        {
            Exception? error = null;
            try
            {
                // a collective's temporaries go when it ends (scopes are per thread), before it is reported done
                using var scope = NewDisposeScope();
                work();
            }
            catch (Exception e)
            {
                error = e;
            }
            if (error is null) done.SetResult();
            else done.SetException(error);
        }
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _thread.Join();
        _queue.Dispose();
    }
}
