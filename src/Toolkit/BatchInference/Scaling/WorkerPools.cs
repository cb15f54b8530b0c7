using System.Diagnostics;
using System.Runtime.InteropServices;
using Toolkit.Jobs;

namespace Toolkit.BatchInference;

/// <summary>The workers a job started, as the autoscaler sees them.</summary>
internal interface IWorkerPool : IAsyncDisposable
{
    /// <summary>Workers running now.</summary>
    int Live { get; }
    /// <summary>Workers started so far.</summary>
    int Started { get; }
    /// <summary>Workers that ended with an error or were killed.</summary>
    int Died { get; }
    /// <summary>Why the job must fail because its workers cannot start (<see cref="StartFailures"/>), or
    /// null.</summary>
    string? Failure { get; }
    /// <summary>Starts one more worker; false (nothing started) while start failures hold starts back.</summary>
    bool Start();
    /// <summary>Notices workers that ended, telling the coordinator about those that did not leave.</summary>
    void Reap();
    /// <summary>
    /// Stops every worker: first waits up to <paramref name="leaving"/> for workers to end on their own (a finished
    /// job's workers leave by themselves), then asks the rest to drain (finish held shards) and, past
    /// <paramref name="grace"/>, kills them.
    /// </summary>
    Task StopAsync(TimeSpan grace, TimeSpan leaving = default);
}

/// <summary>Workers as tasks of this process, calling the coordinator directly.</summary>
internal sealed class InProcessPool(CoordinatorCore core, Action<string>? log) : IWorkerPool
{
    private readonly List<(string Id, Task<WorkerSummary> Task, CancellationTokenSource Drain,
        CancellationTokenSource Abort)> _workers = [];
    private readonly HashSet<string> _reaped = [];
    // stalled workers whose threads may never return: neither live nor waited for
    private readonly HashSet<string> _abandoned = [];

    public int Live => _workers.Count(w => !w.Task.IsCompleted && !_abandoned.Contains(w.Id));
    public int Started => _workers.Count;
    public int Died => _workers.Count(w => w.Task.IsFaulted);
    public string? Failure => _starts.Failure;
    private readonly StartFailures _starts = new();

    public bool Start()
    {
        if (!_starts.CanStart) return false;
        var id = $"w{_workers.Count}-inproc";
        var (drain, abort) = (new CancellationTokenSource(), new CancellationTokenSource());
        var worker = new InferenceWorker(core, id) { Log = log };
        _workers.Add((id, Task.Run(() => worker.RunAsync(drain.Token, abort.Token)), drain, abort));
        return true;
    }

    public void Reap()
    {
        // A stalled worker's thread cannot be killed: it is told to stop and counted as lost.
        var stalled = core.TakeStalled();
        foreach (var w in _workers.Where(w => stalled.Contains(w.Id)))
        {
            w.Abort.Cancel();
            _abandoned.Add(w.Id);
            core.MarkLost(w.Id, "stalled");
        }
        foreach (var w in _workers.Where(w => w.Task.IsFaulted && _reaped.Add(w.Id)))
        {
            _starts.Ended(core.HasWorked(w.Id), w.Task.Exception!.GetBaseException().Message);
            log?.Invoke($"{w.Id} failed: {w.Task.Exception!.GetBaseException().Message}");
            core.MarkLost(w.Id, $"error: {w.Task.Exception!.GetBaseException().Message}");
        }
    }

    public async Task StopAsync(TimeSpan grace, TimeSpan leaving = default)
    {
        if (leaving > TimeSpan.Zero) await Task.WhenAny(Task.WhenAll(_workers.Select(w => (Task)w.Task)),
            Task.Delay(leaving));
        foreach (var w in _workers) w.Drain.Cancel();
        var all = Task.WhenAll(_workers.Where(w => !_abandoned.Contains(w.Id)).Select(w => (Task)w.Task));
        if (await Task.WhenAny(all, Task.Delay(grace)) != all)
            foreach (var w in _workers) w.Abort.Cancel();
        await all.ContinueWith(_ => { }, TaskScheduler.Default);
        Reap();
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.Zero);
}

/// <summary>
/// Workers as child processes (<c>toolkit infer worker</c>) talking to the coordinator over gRPC. Their output goes to
/// <c>workers/&lt;id&gt;.log</c> and their process ids to <c>workers/&lt;id&gt;.pid</c> in the job folder. Stopping
/// sends SIGTERM (drain) and, past the grace period, SIGKILL.
/// </summary>
internal sealed partial class ProcessPool(CoordinatorCore core, string folder, ICoordinatorEndpoint server,
    Action<string>? log) : IWorkerPool
{
    private readonly List<(string Id, Process Process)> _workers = [];
    private readonly List<StreamWriter> _logs = [];
    private readonly HashSet<string> _reaped = [];
    private int _died;

    public int Live => _workers.Count(w => !w.Process.HasExited);
    public int Started => _workers.Count;
    public int Died => _died;
    public string? Failure => _starts.Failure;
    private readonly StartFailures _starts = new();

    public bool Start()
    {
        if (!_starts.CanStart) return false;
        var id = $"w{_workers.Count}-{Environment.ProcessId}";
        // A worker whose coordinator is gone (killed, not yet resumed) gives up after the grace period instead of
        // lingering.
        var worker = new InferWorkerOptions { Coordinator = server.Address, Fingerprint = server.Fingerprint, Id = id,
            Grace = 15 };
        var (process, output) = WorkerProcess.Start(folder, worker,
            new Dictionary<string, string> { [CoordinatorTransports.TokenVariable] = server.Token });
        _logs.Add(output);
        _workers.Add((id, process));
        log?.Invoke($"started worker {id} (pid {process.Id})");
        return true;
    }

    public void Reap()
    {
        var stalled = core.TakeStalled();
        foreach (var (id, process) in _workers.Where(w => stalled.Contains(w.Id) && !w.Process.HasExited))
        {
            log?.Invoke($"worker {id} stalled: killing it (a replacement starts while work remains)");
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        }
        foreach (var (id, process) in _workers.Where(w => w.Process.HasExited && _reaped.Add(w.Id)))
        {
            _starts.Ended(core.HasWorked(id) || process.ExitCode == 0, WorkerProcess.LastWords(folder, id));
            if (process.ExitCode == 0) continue;
            _died++;
            var why = WorkerProcess.Ending(process.ExitCode);
            log?.Invoke($"worker {id} {why}; its leases return to the queue when they expire");
            core.MarkLost(id, why);
        }
    }

    public async Task StopAsync(TimeSpan grace, TimeSpan leaving = default)
    {
        // Waiting first matters: a SIGTERM that reaches a worker before it has set up its handler, or after it has
        // removed it on its way out, ends it by the signal, and it would be counted as died.
        if (leaving > TimeSpan.Zero)
            await Task.WhenAny(Task.WhenAll(_workers.Select(w => w.Process.WaitForExitAsync())), Task.Delay(leaving));
        var live = _workers.Where(w => !w.Process.HasExited).ToList();
        foreach (var (_, process) in live) Signal(process.Id, 15);   // SIGTERM: drain
        var all = Task.WhenAll(live.Select(w => w.Process.WaitForExitAsync()));
        if (await Task.WhenAny(all, Task.Delay(grace)) != all)
            foreach (var (_, process) in live.Where(w => !w.Process.HasExited))
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        await all;
        Reap();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10));
        foreach (var (_, process) in _workers)
        {
            await process.WaitForExitAsync();   // also waits for the output to be read to its end
            process.Dispose();
        }
        foreach (var log in _logs) lock (log) log.Dispose();
    }

    /// <summary>Sends a POSIX signal.</summary>
    internal static void Signal(int pid, int signal) => Toolkit.Runtime.PosixSignals.Send(pid, signal);
}
