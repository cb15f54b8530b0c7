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
    /// <summary>Starts one more worker.</summary>
    void Start();
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

    public int Live => _workers.Count(w => !w.Task.IsCompleted);
    public int Started => _workers.Count;
    public int Died => _workers.Count(w => w.Task.IsFaulted);

    public void Start()
    {
        var id = $"w{_workers.Count}-inproc";
        var (drain, abort) = (new CancellationTokenSource(), new CancellationTokenSource());
        var worker = new InferenceWorker(core, id) { Log = log };
        _workers.Add((id, Task.Run(() => worker.RunAsync(drain.Token, abort.Token)), drain, abort));
    }

    public void Reap()
    {
        foreach (var w in _workers.Where(w => w.Task.IsFaulted && _reaped.Add(w.Id)))
        {
            log?.Invoke($"{w.Id} failed: {w.Task.Exception!.GetBaseException().Message}");
            core.MarkLost(w.Id, $"error: {w.Task.Exception!.GetBaseException().Message}");
        }
    }

    public async Task StopAsync(TimeSpan grace, TimeSpan leaving = default)
    {
        if (leaving > TimeSpan.Zero) await Task.WhenAny(Task.WhenAll(_workers.Select(w => (Task)w.Task)),
            Task.Delay(leaving));
        foreach (var w in _workers) w.Drain.Cancel();
        var all = Task.WhenAll(_workers.Select(w => (Task)w.Task));
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
internal sealed partial class ProcessPool(CoordinatorCore core, string folder, string address, string? token,
    Action<string>? log) : IWorkerPool
{
    /// <summary>Environment variable a worker reads its token from (kept off the command line, which other users can
    /// see).</summary>
    public const string TokenVariable = "TOOLKIT_INFER_TOKEN";

    private readonly List<(string Id, Process Process)> _workers = [];
    private readonly List<StreamWriter> _logs = [];
    private readonly HashSet<string> _reaped = [];
    private int _died;

    public int Live => _workers.Count(w => !w.Process.HasExited);
    public int Started => _workers.Count;
    public int Died => _died;

    public void Start()
    {
        var id = $"w{_workers.Count}-{Environment.ProcessId}";
        var command = RankEntryPoint.Command();
        var logs = Path.Combine(folder, "workers");
        Directory.CreateDirectory(logs);
        // A worker whose coordinator is gone (killed, not yet resumed) gives up after the grace period instead of
        // lingering.
        // Lines can arrive after the process has exited: the log writer lives until the pool is disposed.
        var worker = new InferWorkerOptions { Coordinator = address, Id = id, Grace = 15 };
        var (process, output) = Toolkit.Runtime.ChildProcess.StartLogged(command[0],
            [.. command.Skip(1), .. Jobs.ChildCommands.Of(Jobs.ChildCommands.InferWorker, worker)],
            Path.Combine(logs, $"{id}.log"), token is null ? null : new Dictionary<string,
                string> { [TokenVariable] = token });
        _logs.Add(output);
        File.WriteAllText(Path.Combine(logs, $"{id}.pid"),
            process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _workers.Add((id, process));
        log?.Invoke($"started worker {id} (pid {process.Id})");
    }

    public void Reap()
    {
        foreach (var (id, process) in _workers.Where(w => w.Process.HasExited && _reaped.Add(w.Id)))
        {
            if (process.ExitCode == 0) continue;
            _died++;
            var why = process.ExitCode > 128 ? $"killed by signal {process.ExitCode - 128}" : process.ExitCode < 0
                ? "killed" : $"exited with code {process.ExitCode}";
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
