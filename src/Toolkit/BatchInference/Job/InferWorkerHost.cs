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
        using var client = transport.Connect(address,
            options.Token ?? Environment.GetEnvironmentVariable(ProcessPool.TokenVariable));
        var worker = new InferenceWorker(client, options.Id ?? $"{Environment.MachineName}-{Environment.ProcessId}")
        {
            CoordinatorGrace = TimeSpan.FromSeconds(options.Grace),
            Log = log,
        };
        try
        {
            var summary = await worker.RunAsync(drain.Token, abort.Token);
            return summary.Reason is "finished" or "drained" or "stopped" ? 0 : 1;
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
}
