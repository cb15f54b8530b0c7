using System.Diagnostics;

namespace Toolkit.BatchInference;

/// <summary>The elastic controller of a batch-inference job's worker pool.</summary>
internal static class Autoscaler
{
    /// <summary>
    /// One step of the controller: replace workers that died while fewer than the minimum run; add one (up to the
    /// maximum, at most every 10 s) while the backlog at the measured rate would take more than 30 s; never more
    /// workers than shards left. Workers leave by themselves when no work is left.
    /// </summary>
    public static void Step(InferJobOptions spec, InferStatus status, IWorkerPool pool, Stopwatch sinceScale,
        Action<string> log)
    {
        var left = status.Shards - status.ShardsDone - status.Failed.Count;
        var live = pool.Live;
        var target = Math.Max(live, Math.Max(spec.Scheduling.MinWorkers, 1));
        if (live < spec.Scheduling.WorkerCeiling && sinceScale.Elapsed > TimeSpan.FromSeconds(10)
            && status.EtaSeconds is > 30) target = live + 1;
        target = Math.Min(Math.Min(target, spec.Scheduling.WorkerCeiling), left);
        if (target > live)
        {
            var eta = status.EtaSeconds?.ToString("F0", System.Globalization.CultureInfo.InvariantCulture) ?? "unknown";
            var started = 0;
            while (pool.Live < target && pool.Start()) started++;   // none while start failures hold starts back
            if (started == 0) return;
            log($"autoscaler: {live} -> {live + started} worker(s) ({left} shards left, ETA {eta} s)");
            sinceScale.Restart();
        }
    }
}
