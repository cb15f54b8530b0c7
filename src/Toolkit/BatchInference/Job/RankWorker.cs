using Toolkit.Jobs;

namespace Toolkit.BatchInference;

/// <summary>
/// A worker rank under mpiexec or srun runs its worker as a child process and starts it again when it dies (a record
/// that crashes the model, the OOM killer, a kill): mpiexec tears every rank down when one rank process ends
/// abnormally (MPICH's hydra does so even with <c>-disable-auto-cleanup</c>), and starting every rank again (the job
/// host's relaunch) costs far more than starting one worker; under srun the rank would simply be lost. The dead
/// worker's shards go back to the queue when their leases expire. Workers that end before doing any work back off
/// and, five in a row, fail the rank (<see cref="StartFailures"/>).
/// </summary>
internal static class RankWorker
{
    /// <summary>Seconds a worker gets to drain after SIGTERM (the rank was stopped) before it is killed.</summary>
    private const int DrainSeconds = 30;

    /// <summary>Supervises rank <paramref name="rank"/>'s worker until it ends with nothing left to do (true) or the
    /// rank is stopped (false).</summary>
    /// <exception cref="JobFailedException">Its workers kept ending before doing any work.</exception>
    public static async Task<bool> RunAsync(string folder, int rank, CoordinatorAddress address,
        Action<string>? log, CancellationToken cancel)
    {
        var starts = new StartFailures();
        for (var attempt = 0; ; attempt++)
        {
            while (!starts.CanStart)
            {
                if (starts.Failure is { } failure) throw new JobFailedException($"rank {rank}: {failure}");
                await Task.Delay(200, cancel);
            }
            var id = $"{Environment.MachineName}-rank{rank}" + (attempt > 0 ? $"-{attempt}" : "");
            var worker = new InferWorkerOptions { Coordinator = address.Address, Fingerprint = address.Fingerprint,
                TokenFile = Path.Combine(folder, InferLayout.TokenFile), JobFolder = folder, Id = id, Grace = 15 };
            var (process, output) = WorkerProcess.Start(folder, worker);
            using var _ = process;
            await using (output)
            {
                try { await process.WaitForExitAsync(cancel); }
                catch (OperationCanceledException)
                {
                    await Stop(process);
                    return false;
                }
                await process.WaitForExitAsync();   // the output read to its end
            }
            if (process.ExitCode == 0) return true;
            var why = WorkerProcess.Ending(process.ExitCode);
            var lines = WorkerProcess.Lines(folder, id);
            starts.Ended(lines.Any(l => l.Contains($"{id}: shard ", StringComparison.Ordinal)),
                lines.LastOrDefault() ?? "(nothing)");
            log?.Invoke($"rank {rank}: worker {id} {why}; its leases return to the queue when they expire; " +
                "starting it again");
        }
    }

    private static async Task Stop(System.Diagnostics.Process process)
    {
        if (process.HasExited) return;
        Runtime.PosixSignals.Send(process.Id, 15);   // SIGTERM: drain
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(DrainSeconds));
        try { await process.WaitForExitAsync(grace.Token); }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync();
        }
    }
}
