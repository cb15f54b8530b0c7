using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using Toolkit.Generation;
using Toolkit.Options;
using Toolkit.Reporting;
using Toolkit.Runs;
using Toolkit.Runtime;

namespace Toolkit.Rl;

/// <summary>Options of <c>rl experiment icepop</c>: the job, the seeds and corrections to run it with, and what
/// counts as degraded.</summary>
public sealed record IcePopExperimentOptions : Jobs.ICheckedOptions
{
    /// <summary>The job every run starts from (its seed and correction are set per run by <see cref="Seeds"/> and
    /// <see cref="Corrections"/>). Default: the small GPT as a mixture of 8 experts (top-2), fp8 rollouts, addition,
    /// 60 RL steps evaluated every 10 (the twelve runs of the defaults fit in 15 minutes on 2 cores).</summary>
    [OptionGroup(Exclude = ["seed", "correction"])] public RlTrainOptions Job { get; init; } = new()
    {
        Policy = PolicyKind.Moe, Experts = 8, TopK = 2, Steps = 60, EvalEvery = 10,
        Rollout = new() { Precision = Numerics.Fp8 },
    };

    /// <summary>Seeds, comma separated. Default 1,2,3.</summary>
    [Option("Seeds, comma separated: each runs once per correction, and once with fp32 rollouts (the reference).")]
    public string Seeds { get; init; } = "1,2,3";

    /// <summary>Corrections compared, comma separated. Default none,tis,icepop.</summary>
    [Option("Corrections compared at the job's rollout precision, comma separated.")]
    public string Corrections { get; init; } = "none,tis,icepop";

    /// <summary>A run is degraded when its final held-out accuracy is this many points below its best, or it
    /// diverged. Default 10.</summary>
    [Option("A run counts as degraded when it ends this many held-out accuracy points below its best (or diverges).")]
    public double DegradePoints { get; init; } = 10;

    /// <summary>A correction holds when its mean final accuracy is within this many points of the fp32 runs'.
    /// Default 5.</summary>
    [Option("A correction holds when its mean final held-out accuracy is within this many points of fp32's.")]
    public double NearPoints { get; init; } = 5;

    /// <summary>The seeds.</summary>
    [JsonIgnore] public IReadOnlyList<int> SeedList => [.. Split(Seeds).Select(s => int.TryParse(s,
        NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentOutOfRangeException(
            nameof(Seeds), s, "is not an integer seed"))];

    /// <summary>The corrections.</summary>
    [JsonIgnore] public IReadOnlyList<Correction> CorrectionList => [.. Split(Corrections).Select(name =>
        Enum.GetValues<Correction>().Cast<Correction?>().FirstOrDefault(c => OptionSpec.EnumName(typeof(Correction),
            c!.Value) == name.ToLowerInvariant()) ?? throw new ArgumentOutOfRangeException(nameof(Corrections), name,
                $"is not a correction; valid: {string.Join(", ", OptionSpec.EnumNames(typeof(Correction)))}"))];

    /// <summary>Every run, named <c>correction/seedN</c> (<c>fp32/seedN</c> for the reference), in order.</summary>
    [JsonIgnore] public IReadOnlyList<(string Name, RlTrainOptions Job)> Runs => [.. SeedList.SelectMany(seed =>
        new[] { ("fp32", Job with { Seed = seed, Rollout = Job.Rollout with { Precision = Numerics.Fp32 },
            Correction = Job.Correction with { Correction = Correction.None } }) }
        .Concat(CorrectionList.Select(c => (OptionSpec.EnumName(typeof(Correction), c),
            Job with { Seed = seed, Correction = Job.Correction with { Correction = c } })))
        .Select(r => ($"{r.Item1}/seed{seed}", r.Item2)))];

    /// <summary>Throws naming the first invalid option.</summary>
    public IcePopExperimentOptions Validate()
    {
        if (SeedList.Count == 0) throw new ArgumentOutOfRangeException(nameof(Seeds), Seeds, "names no seed");
        if (SeedList.Distinct().Count() != SeedList.Count)
            throw new ArgumentOutOfRangeException(nameof(Seeds), Seeds, "repeats a seed");
        if (CorrectionList.Count == 0) throw new ArgumentOutOfRangeException(nameof(Corrections), Corrections,
            "names no correction");
        foreach (var (_, job) in Runs) job.Validate();
        if (!(DegradePoints > 0)) throw new ArgumentOutOfRangeException(nameof(DegradePoints), DegradePoints,
            "must be positive");
        if (!(NearPoints > 0)) throw new ArgumentOutOfRangeException(nameof(NearPoints), NearPoints,
            "must be positive");
        return this;
    }

    void Jobs.ICheckedOptions.Check() => Validate();

    private static IEnumerable<string> Split(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>One run of the experiment.</summary>
/// <param name="Name"><c>correction/seedN</c>.</param>
/// <param name="Correction">none, tis, icepop, ... or fp32 for the reference (fp32 rollouts, no correction).</param>
/// <param name="Seed">Its seed.</param>
/// <param name="WarmStartAccuracy">Held-out accuracy when RL started.</param>
/// <param name="BestAccuracy">Its best held-out accuracy (warm start included).</param>
/// <param name="FinalAccuracy">After the last step (NaN when it diverged).</param>
/// <param name="Diverged">Why it stopped early, or null.</param>
/// <param name="Degraded">Final accuracy at least the threshold below the best, or diverged.</param>
/// <param name="Steps">Its per-step diagnostics (empty when it diverged).</param>
/// <param name="RunPath">Its run folder.</param>
public sealed record IcePopRun(string Name, string Correction, int Seed, double WarmStartAccuracy,
    double BestAccuracy, double FinalAccuracy, string? Diverged, bool Degraded, IReadOnlyList<RlStep> Steps,
    string? RunPath);

/// <summary>What the experiment found for one correction over the seeds.</summary>
/// <param name="Correction">The correction (or fp32).</param>
/// <param name="Runs">Seeds run.</param>
/// <param name="Degraded">Of those, how many degraded.</param>
/// <param name="MeanFinalAccuracy">Mean final held-out accuracy (diverged runs count as 0).</param>
/// <param name="PointsBelowFp32">How far that is below the fp32 runs' mean, in points.</param>
/// <param name="Holds">No seed degraded and the mean final accuracy is within the experiment's near-points of
/// fp32's: the paper's claim for IcePop.</param>
public sealed record IcePopVerdict(string Correction, int Runs, int Degraded, double MeanFinalAccuracy,
    double PointsBelowFp32, bool Holds);

/// <summary>What <c>rl experiment icepop</c> measured.</summary>
public sealed record IcePopExperimentResult(IcePopExperimentOptions Options, IReadOnlyList<IcePopRun> Runs,
    IReadOnlyList<IcePopVerdict> Verdicts, double Seconds, string Folder) : IFacts
{
    /// <inheritdoc/>
    [JsonIgnore] public string Title => "IcePop experiment: " +
        $"{OptionSpec.EnumName(typeof(Numerics), Options.Job.Rollout.Precision)} rollouts, " +
        $"{Options.SeedList.Count} seed{(Options.SeedList.Count == 1 ? "" : "s")}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts() =>
    [
        .. Verdicts.Select(v => (v.Correction, FormattableString.Invariant(
            $"degraded in {v.Degraded} of {v.Runs} seeds; final held-out {100 * v.MeanFinalAccuracy:F1} %") +
            (v.Correction == "fp32" ? "" : FormattableString.Invariant(
                $", {Math.Abs(v.PointsBelowFp32):F1} points {(v.PointsBelowFp32 >= 0 ? "below" : "above")} fp32") +
                (v.Holds ? "; holds" : "; does not hold")))),
        ("time", string.Create(CultureInfo.InvariantCulture, $"{Seconds:F0} s")),
        ("folder", Folder),
    ];
}

/// <summary>
/// Ring-1T's IcePop experiment at this toolkit's scale: the same MoE policy trained with vanilla GRPO, TIS and IcePop
/// (and any other corrections) from rollouts in a low precision, and once with fp32 rollouts, over several seeds;
/// per correction and step, the mismatch diagnostics, gradient norm, masked fraction and held-out accuracy. A run
/// that diverges (the gradient norm crosses <c>--stop-grad-norm</c>) is recorded as degraded, and the experiment goes
/// on. Writes <c>experiment.json</c> and <c>report.html</c> into <c>icepop-&lt;time&gt;</c> under the runs folder.
/// </summary>
public static class IcePopExperiment
{
    /// <summary>Runs the experiment; <paramref name="progress"/> receives each run's metrics.</summary>
    public static async Task<IcePopExperimentResult> RunAsync(IcePopExperimentOptions options,
        IProgress<(string Run, MetricPoint Point)>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var clock = Stopwatch.StartNew();
        var folder = Path.Combine(Path.GetFullPath(options.Job.Launch.RunsDirectory),
            $"icepop-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Random.Shared.Next(0x10000):x4}");
        Directory.CreateDirectory(folder);
        var runs = new List<IcePopRun>();
        foreach (var (name, job) in options.Runs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var tagged = progress is null ? null : new Progress(name, progress);
            var correction = name[..name.IndexOf('/')];
            try
            {
                var result = await RlTrainJob.RunAsync(job, tagged, cancellationToken);
                var accuracies = result.Steps.Select(s => s.HeldOutAccuracy).Where(double.IsFinite)
                    .Prepend(result.WarmStartAccuracy).ToList();
                var best = accuracies.Max();
                runs.Add(new IcePopRun(name, correction, job.Seed, result.WarmStartAccuracy, best,
                    result.FinalAccuracy, null, 100 * (best - result.FinalAccuracy) >= options.DegradePoints,
                    result.Steps, result.RunPath));
            }
            catch (RlDivergedException e)
            {
                runs.Add(new IcePopRun(name, correction, job.Seed, double.NaN, double.NaN, double.NaN, e.Message,
                    true, [], null));
            }
        }
        var verdicts = Verdicts(runs, options.NearPoints);
        var experiment = new IcePopExperimentResult(options, runs, verdicts, clock.Elapsed.TotalSeconds, folder);
        ToolkitJson.Write(Path.Combine(folder, "experiment.json"), experiment);
        HtmlReport.Write(Path.Combine(folder, "report.html"), experiment.Title, experiment.Facts(),
            [IcePopCharts.PerCorrection(experiment)]);
        return experiment;
    }

    private static List<IcePopVerdict> Verdicts(List<IcePopRun> runs, double nearPoints)
    {
        double Final(IcePopRun r) => double.IsFinite(r.FinalAccuracy) ? r.FinalAccuracy : 0;
        var fp32 = runs.Where(r => r.Correction == "fp32").Select(Final).DefaultIfEmpty(double.NaN).Average();
        return [.. runs.GroupBy(r => r.Correction).Select(g =>
        {
            var (mean, degraded) = (g.Average(Final), g.Count(r => r.Degraded));
            var below = 100 * (fp32 - mean);
            return new IcePopVerdict(g.Key, g.Count(), degraded, mean, below, degraded == 0 && below <= nearPoints);
        })];
    }

    private sealed class Progress(string run, IProgress<(string Run, MetricPoint Point)> target)
        : IProgress<MetricPoint>
    {
        public void Report(MetricPoint value) => target.Report((run, value));
    }
}
