namespace Toolkit.Runs;

/// <summary>Names of the metrics every training job records (subsystems add their own next to their jobs).</summary>
internal static class MetricNames
{
    /// <summary>Training loss of the step (this rank's micro-batches).</summary>
    public const string Loss = "loss";
    /// <summary>Wall time of the step, seconds.</summary>
    public const string StepSeconds = "step_seconds";
    /// <summary>Bytes this rank sent inside its group during the step.</summary>
    public const string IntraBytes = "comm.intra_bytes";
    /// <summary>Bytes this rank sent to other groups during the step.</summary>
    public const string InterBytes = "comm.inter_bytes";
}
