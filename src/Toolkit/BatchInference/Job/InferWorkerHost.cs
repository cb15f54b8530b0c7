using System.Runtime.InteropServices;
using Toolkit.Jobs;

namespace Toolkit.BatchInference;

/// <summary>
/// A worker process (<c>toolkit infer worker</c>): joins a running job's coordinator over gRPC and works until the job
/// is finished. The first SIGTERM or SIGINT drains (the shards held are finished, then it leaves); a second gives them
/// back at once.
/// </summary>
internal static class InferWorkerHost
{
    /// <summary>Runs the worker; returns the process exit code (0: finished, drained or stopped).</summary>
    /// <exception cref="JobFailedException">The coordinator refused the worker or could not be reached.</exception>
    public static async Task<int> RunAsync(InferWorkerOptions options, CancellationToken cancel,
        Action<string>? log = null)
    {
        options.Check();
        if (FaultStage.Injects("start"))
            throw new JobFailedException($"this worker was told to fail as it starts ({FaultStage.Variable}=start)");
        if (Finished(options.JobFolder))
        {
            log?.Invoke($"the job in {options.JobFolder} is finished: nothing to do");
            return 0;
        }
        var token = ReadToken(options);
        using var drain = new CancellationTokenSource();
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (drain.IsCancellationRequested) abort.Cancel();
            else
            {
                log?.Invoke("draining: finishing the shards held, then leaving (signal again to give them back now)");
                drain.Cancel();
            }
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        var address = options.Coordinator!;
        var transport = CoordinatorTransports.Find();
        string? fingerprint = options.Fingerprint;
        if (fingerprint is null && options.JobFolder is { } folder
            && address.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(drain.Token, abort.Token);
            fingerprint = await PinFromJobFolder(folder, options.Grace, stop.Token, log);
            if (fingerprint is null) return Finished(folder) ? 0 : WorkLeft;   // finished, or stopped first
        }
        using var client = transport.Connect(address, token, fingerprint);
        var worker = new InferenceWorker(client, options.Id ?? $"{Environment.MachineName}-{Environment.ProcessId}")
        {
            CoordinatorGrace = TimeSpan.FromSeconds(options.Grace),
            JobFinished = options.JobFolder is { } jobFolder ? () => Finished(jobFolder) : null,
            Log = log,
            OnStalled = seconds =>
            {
                log?.Invoke($"stalled: shards held for {seconds:F0} s and the pipeline moved no record; exiting " +
                    $"with code {Stalled} so that it is started again");
                Environment.Exit(Stalled);
            },
        };
        try
        {
            var summary = await worker.RunAsync(drain.Token, abort.Token);
            // A work-queue pod (--job-folder) that exits 0 tells Kubernetes the work is done: only when it is.
            if (options.JobFolder is not null)
                return summary.Reason == "finished" || Finished(options.JobFolder) ? 0 : WorkLeft;
            return summary.Reason is "finished" or "drained" or "stopped" ? 0 : 1;
        }
        catch (Exception e) when (transport.Explain(e) is { Refused: false } && Finished(options.JobFolder))
        {
            log?.Invoke($"the coordinator has ended and the job in {options.JobFolder} is finished");
            return 0;
        }
        catch (Exception e) when (transport.Explain(e) is { } fault)
        {
            throw new JobFailedException(fault.Refused
                ? $"the coordinator at {address} refused this worker: {fault.Detail}"
                : $"the coordinator at {address} could not be reached for {options.Grace:F0} s " +
                  $"({fault.Detail}). Is the job running? Its folder's {InferLayout.CoordinatorFile} has the " +
                  "address; toolkit infer resume FOLDER restarts it.");
        }
    }

    /// <summary>The worker's token: read from its <c>--token-file</c>, or the environment's.</summary>
    /// <exception cref="ArgumentException">Neither gives one; the message says where to find it.</exception>
    private static string ReadToken(InferWorkerOptions options)
    {
        if (options.TokenFile is { } file)
            return File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } token ? token
                : throw new ArgumentException($"'{file}' does not exist or is empty", nameof(options.TokenFile));
        return CoordinatorTransports.TokenFromEnvironment() ?? throw new ArgumentException(
            $"the coordinator needs the job's token: pass --token-file JOB_FOLDER/{InferLayout.TokenFile}, or set " +
                $"{CoordinatorTransports.TokenVariable}", nameof(options.TokenFile));
    }

    /// <summary>
    /// For an https coordinator given without <c>--fingerprint</c>: the fingerprint the job folder's
    /// <c>coordinator.json</c> holds (a Kubernetes pod sees the folder on the shared volume), waiting up to
    /// <paramref name="grace"/> seconds for the coordinator to write it; null when the job is found finished or the
    /// worker is stopped first.
    /// </summary>
    /// <exception cref="JobFailedException">No coordinator wrote it in time.</exception>
    private static async Task<string?> PinFromJobFolder(string folder, double grace, CancellationToken stop,
        Action<string>? log)
    {
        var file = Path.Combine(folder, InferLayout.CoordinatorFile);
        var deadline = DateTime.UtcNow.AddSeconds(Math.Max(grace, 1));
        while (!stop.IsCancellationRequested && !Finished(folder))
        {
            try
            {
                if (File.Exists(file) && Runtime.ToolkitJson.Read<CoordinatorAddress>(file) is
                    { Fingerprint: { } pin })
                {
                    log?.Invoke($"pinning the coordinator's certificate from {file}");
                    return pin;
                }
            }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { }   // being written
            if (DateTime.UtcNow > deadline) throw new JobFailedException(
                $"no coordinator certificate appeared in {file} within {grace:F0} s: is the coordinator " +
                    "running on that job folder? (--fingerprint pins one explicitly)");
            try { await Task.Delay(500, stop); }
            catch (OperationCanceledException) { }
        }
        return null;
    }

    /// <summary>The exit code of a work-queue worker drained or stopped while work remains (EX_TEMPFAIL).</summary>
    public const int WorkLeft = 75;

    /// <summary>The exit code of a worker that stalled (EX_SOFTWARE): whatever runs it should start it again.</summary>
    public const int Stalled = 70;

    /// <summary>True when <paramref name="folder"/> holds a finished job (its coordinator's last snapshot).</summary>
    private static bool Finished(string? folder)
    {
        var snapshot = folder is null ? null : Path.Combine(folder, InferLayout.StatusFile);
        try { return snapshot is not null && File.Exists(snapshot)
            && Runtime.ToolkitJson.Read<InferStatus>(snapshot) is { Finished: true }; }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { return false; }
    }
}
