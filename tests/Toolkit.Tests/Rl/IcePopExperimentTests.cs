using System.Text.Json;
using Toolkit.Options;
using Toolkit.Rl;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Rl;

/// <summary><c>rl experiment icepop</c>: which runs it makes, what it refuses, and that a run which diverges is
/// recorded as degraded while the experiment goes on to write its JSON and report.</summary>
public sealed class IcePopExperimentTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-icepop-");

    public void Dispose() => _runs.Dispose();

    [Fact]
    public void Runs_AreOneFp32ReferenceAndOnePerCorrection_PerSeed()
    {
        var o = new IcePopExperimentOptions { Seeds = "3, 5", Corrections = "none,icepop" };
        Assert.Equal(["fp32/seed3", "none/seed3", "icepop/seed3", "fp32/seed5", "none/seed5", "icepop/seed5"],
            o.Runs.Select(r => r.Name));
        var (_, fp32) = o.Runs[0];
        Assert.Equal((Toolkit.Generation.Numerics.Fp32, Correction.None, 3),
            (fp32.Rollout.Precision, fp32.Correction.Correction, fp32.Seed));
        var (_, icepop) = o.Runs[5];
        Assert.Equal((Toolkit.Generation.Numerics.Fp8, Correction.IcePop, 5, PolicyKind.Moe, 8, 2),
            (icepop.Rollout.Precision, icepop.Correction.Correction, icepop.Seed, icepop.Policy, icepop.Experts,
                icepop.TopK));
    }

    [Fact]
    public void TheJobsSeedAndCorrection_AreNotOptions_TheExperimentSetsThem()
    {
        var names = OptionSchema.For<IcePopExperimentOptions>().Select(s => s.Name).ToList();
        Assert.DoesNotContain("--seed", names);
        Assert.DoesNotContain("--correction", names);
        Assert.Contains("--seeds", names);
        Assert.Contains("--corrections", names);
        Assert.Contains("--alpha", names);        // IcePop's band still is
    }

    [Theory]
    [InlineData("--seeds", "1,x", "--seeds x: is not an integer seed")]
    [InlineData("--seeds", "2,2", "--seeds 2,2: repeats a seed")]
    [InlineData("--corrections", "none,magic",
        "--corrections magic: is not a correction; valid: none, tis, icepop, mis")]
    [InlineData("--degrade-points", "0", "--degrade-points 0: must be positive")]
    public void BadInput_IsRefusedNamingTheOption(string option, string value, string message)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => OptionBinder.Bind(new IcePopExperimentOptions(),
            [new(option, value)], "rl experiment icepop").Validate());
        Assert.Equal(message, OptionException.Describe(e, OptionSchema.For<IcePopExperimentOptions>()));
    }

    [Fact]
    public async Task ADivergedRun_CountsAsDegraded_AndTheExperimentGoesOn()
    {
        // The long-tail task after a short warm start gives mixed rewards at the first step (as in
        // RlTrainJobTests.Divergence_...), so the fp32 run's gradient crosses a stop norm of 1e-9 within 3 steps.
        var o = new IcePopExperimentOptions
        {
            Seeds = "1", Corrections = "none",
            Job = new IcePopExperimentOptions().Job with
            {
                Launch = new() { Ranks = 1, GroupSize = 1, RunsDirectory = _runs.Path }, Task = "longtail",
                Model = new() { Name = "small" }, Policy = PolicyKind.Dense, WarmupSteps = 30, WarmupLr = 3e-3,
                Steps = 3, EvalEvery = 1, StopGradNorm = 1e-9,
                Rollout = new() { Budget = 48, Prompts = 8, Samples = 8, Precision = Toolkit.Generation.Numerics.Fp8 },
            },
        };
        var result = await IcePopExperiment.RunAsync(o);
        Assert.Equal(["fp32/seed1", "none/seed1"], result.Runs.Select(r => r.Name));
        Assert.Contains("crossed --stop-grad-norm", result.Runs[0].Diverged);
        Assert.All(result.Runs, r => Assert.Equal(r.Diverged is not null || r.BestAccuracy - r.FinalAccuracy >= 0.1,
            r.Degraded));
        Assert.Equal(("fp32", 1, 1, false), (result.Verdicts[0].Correction, result.Verdicts[0].Runs,
            result.Verdicts[0].Degraded, result.Verdicts[0].Holds));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(result.Folder, "experiment.json")));
        Assert.Equal(2, json.RootElement.GetProperty("runs").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(result.Folder, "report.html")));
    }
}
