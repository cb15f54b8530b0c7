using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Paro;

/// <summary>Options of the PaRO exactness self-test.</summary>
internal sealed record ParoSelfTestOptions : IJobOptions
{
    /// <summary>Where the ranks run.</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new();

    /// <summary>Micro-steps per step.</summary>
    [Option("Micro-steps per step.")] public int Accumulation { get; init; } = 2;

    /// <summary>Optimizer steps.</summary>
    [Option("Optimizer steps.")] public int Steps { get; init; } = 3;

    /// <summary>Also train every strategy layer-wise (a small GPT; results keyed <c>CODE/layerwise</c>).</summary>
    [Option("Also train every strategy layer-wise.")] public bool Layerwise { get; init; }

    /// <summary>Hugging Face folders also trained under every strategy, comma-separated (results keyed
    /// <c>CODE/FOLDER</c>).</summary>
    [Option("Hugging Face folders also trained under every strategy, " +
        "comma-separated.")] public string? Folders { get; init; }

    public void Check() { }
}

/// <summary>
/// Trains <see cref="ExactnessProbe"/> under every trained strategy on every rank and returns each rank's final
/// parameters per strategy; the tests compare them with single-process training.
/// </summary>
internal sealed class ParoSelfTestJob : RankJob<ParoSelfTestOptions, Dictionary<string, float[]>,
    List<Dictionary<string, float[]>>>
{
    public override string Kind => "selftest-paro";

    public override Dictionary<string, float[]> RunRank(RankContext<ParoSelfTestOptions> context)
    {
        var o = context.Options;
        var results = ShardingStrategy.Trained.ToDictionary(s => s.Code, s => ExactnessProbe.Train(context.Comm,
            s.Code, o.Launch.GroupSize, o.Accumulation, o.Steps));
        if (o.Layerwise)
            foreach (var s in ShardingStrategy.Trained)
                results[$"{s.Code}/layerwise"] = ExactnessProbe.Train(context.Comm, s.Code, o.Launch.GroupSize,
                    o.Accumulation, o.Steps, layerwise: true);
        foreach (var folder in o.Folders?.Split(',') ?? [])
            foreach (var s in ShardingStrategy.Trained)
                results[$"{s.Code}/{folder}"] = ExactnessProbe.Train(context.Comm, s.Code, o.Launch.GroupSize,
                    o.Accumulation, o.Steps, folder: folder);
        return results;
    }

    public override List<Dictionary<string, float[]>> Finish(JobRun<ParoSelfTestOptions> run,
        IReadOnlyList<Dictionary<string, float[]>> outcomes) => [.. outcomes];
}
