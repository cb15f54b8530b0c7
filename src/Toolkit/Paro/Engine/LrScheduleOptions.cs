using System.Text.Json.Serialization;
using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>How the learning rate changes after its warm-up.</summary>
public enum LrSchedule
{
    /// <summary>The peak rate from the end of the warm-up on.</summary>
    [JsonStringEnumMemberName("constant")] Constant,
    /// <summary>Half a cosine from the peak down to <see cref="LrScheduleOptions.MinRatio"/> times it.</summary>
    [JsonStringEnumMemberName("cosine")] Cosine,
}

/// <summary>Learning-rate warm-up and decay, per optimizer phase step (the shape of Hugging Face's and verl's
/// schedulers).</summary>
public sealed record LrScheduleOptions
{
    /// <summary>constant or cosine. Default constant.</summary>
    [Option("Learning-rate schedule after the warm-up: constant, or cosine (down to --min-lr-ratio times the " +
        "peak).", Name = "lr-schedule")]
    public LrSchedule Schedule { get; init; } = LrSchedule.Constant;

    /// <summary>Steps of linear warm-up to the peak. Default 0.</summary>
    [Option("Steps of linear learning-rate warm-up: step i (from 0) runs at (i + 1) / W of the peak rate.",
        Name = "lr-warmup-steps")]
    public int WarmupSteps { get; init; }

    /// <summary>The cosine's floor as a fraction of the peak. Default 0.</summary>
    [Option("The cosine schedule's floor, as a fraction of the peak rate.", Name = "min-lr-ratio")]
    public double MinRatio { get; init; }

    /// <summary>
    /// The multiplier of the peak rate at <paramref name="step"/> (0-based) of <paramref name="steps"/>: (step + 1) / W
    /// during a warm-up of W steps (so the first step already moves and step W − 1 runs at the peak, as Megatron's
    /// warm-up does), then 1 (constant) or m + (1 − m) · ½ (1 + cos(π p)) with p = (step − W) / (steps − W)
    /// (cosine).
    /// </summary>
    public double Factor(int step, int steps)
    {
        if (step < WarmupSteps) return (step + 1) / (double)WarmupSteps;
        if (Schedule == LrSchedule.Constant) return 1;
        var progress = (step - WarmupSteps) / (double)Math.Max(1, steps - WarmupSteps);
        return MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }

    /// <summary>Throws naming the first invalid setting.</summary>
    public LrScheduleOptions Validate()
    {
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps,
            "must not be negative");
        if (!(MinRatio is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(MinRatio), MinRatio,
            "must be in [0, 1]");
        return this;
    }
}
