using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Events;
using static Toolkit.Interactive.Tests.KernelResults;

namespace Toolkit.Interactive.Tests;

public sealed class ParoMagicTests : IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-paro-magic-").FullName;

    public void Dispose()
    {
        _kernel.Dispose();
        Directory.Delete(_runs, recursive: true);
    }

    [Fact]
    public async Task Plan_ShowsTheTable_Recommendation_AndThreeCharts()
    {
        var result = await _kernel.SubmitCodeAsync("#!paro plan --model llama-65b --gpus 64 --accumulation 4");
        AssertSucceeded(result);
        var html = Html(result);
        Assert.Contains(html, h => h.Contains("recommended: IIG") && h.Contains("GGG (ZeRO-3)"));
        Assert.Equal(3, html.Count(h => h.Contains("Plotly.newPlot")));
        Assert.Contains(html, h => h.Contains("device memory"));
    }

    [Fact]
    public async Task Train_UpdatesTheLiveChartsInPlace_ThenShowsMeasurements()
    {
        var result
            = await _kernel.SubmitCodeAsync($"#!paro train --strategy zero3 --layerwise --steps 6 --runs-dir {_runs}");
        AssertSucceeded(result);
        var produced = result.Events.OfType<DisplayedValueProduced>().First(e => e.FormattedValues.Any(v
            => v.Value.Contains("Plotly.newPlot")));
        var updates = result.Events.OfType<DisplayedValueUpdated>().ToList();
        Assert.NotEmpty(updates);
        Assert.All(updates, u => Assert.Equal(produced.ValueId, u.ValueId));
        Assert.Contains("bytes sent across groups per step", updates[^1].FormattedValues.Single().Value);
        Assert.Contains(Html(result), h => h.Contains("PaRO GGG") && h.Contains("bytes per rank per step"));
    }

    [Fact]
    public async Task Train_WithTheMpiLauncher_StartsMpiexec_AndChartsTheRun()
    {
        var result
            = await _kernel.SubmitCodeAsync(
                $"#!paro train --strategy IGG --launcher mpi --np 4 --steps 3 --runs-dir {_runs}");
        AssertSucceeded(result);
        Assert.Contains(Html(result), h => h.Contains("PaRO IGG"));
        var run = Assert.Single(Directory.GetDirectories(_runs));
        Assert.Equal(4, Directory.GetFiles(run, "metrics.rank-*.jsonl").Length);
    }

    [Fact]
    public async Task Compare_TwoStrategies_ChartsMeasuredMemoryTrafficAndThroughput()
    {
        var result = await _kernel.SubmitCodeAsync($"#!paro compare --strategies NNN,NIG --steps 3 --runs-dir {_runs}");
        AssertSucceeded(result);
        var html = Html(result);
        Assert.Contains(html, h => h.Contains("Measured memory of rank 0 by component, per strategy"));
        Assert.Contains(html, h => h.Contains("Measured bytes sent per rank per step"));
        Assert.Contains(html, h => h.Contains("Measured training throughput per strategy"));
        Assert.Equal(2, Directory.GetDirectories(_runs).Length);
    }

    [Fact]
    public async Task CollectivePlan_ShowsTheTableAndTwoCharts()
    {
        var result
            = await _kernel.SubmitCodeAsync(
                "#!collective plan --nodes 2 --ranks-per-node 4 --sizes 1MiB,64MiB --node-counts 2,4");
        AssertSucceeded(result);
        var html = Html(result);
        Assert.Contains(html, h => h.Contains("ho-ring") && h.Contains("64 MiB"));
        Assert.Equal(2, html.Count(h => h.Contains("Plotly.newPlot")));
        // Charts draw with the plotly.js the extension sent once, not one fetched from a CDN.
        Assert.All(html.Where(h => h.Contains("Plotly.newPlot")), h => Assert.Contains("window.Plotly", h));
        Assert.DoesNotContain(html, h => h.Contains("cdn.plot.ly") || h.Contains("require.config"));
        var bad = await _kernel.SubmitCodeAsync("#!collective plan --inter-bandwidth fast");
        Assert.Contains("is not a rate", Assert.IsType<CommandFailed>(bad.Events.Last()).Message);
    }

    /// <summary>A DAG declared in the magic, quotes and parentheses included, runs as declared: the stage names reach
    /// the result.</summary>
    [Fact]
    public async Task InferRun_WithDeclaredStages_RunsTheDag()
    {
        var input = Path.Combine(_runs, "..", $"{Path.GetFileName(_runs)}-in.jsonl");
        File.WriteAllLines(input, Enumerable.Range(0,
            12).Select(i
                => $"{{\"id\":\"r{i}\",\"text\":\"{(i % 2 == 0 ? "It rained all day." : "The cat slept by the " +
                    "fire.")}\"}}"));
        try
        {
            var result = await _kernel.SubmitCodeAsync(
                $"#!infer run --input {input} --stages \"emb=embed,topic=classify(emb)\" " +
                $"--labels \"weather,animals\" --launcher inproc --workers 1 --shard-size 12 --runs-dir {_runs}");
            AssertSucceeded(result);
            var html = Html(result);
            Assert.Contains(html, h => h.Contains("batch inference infer-") && h.Contains("completed"));
            var folder = Directory.GetDirectories(_runs).Single();
            var rows = File.ReadLines(Directory.GetFiles(Path.Combine(folder, "output"),
                "part-*.jsonl").Single()).ToList();
            Assert.Contains("\"topic_label\":\"weather\"", rows[0]);
            Assert.Contains("\"topic_label\":\"animals\"", rows[1]);
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Theory]
    [InlineData("#!paro train --strategy GNN", "not effective")]
    [InlineData("#!paro train --strategy XYZ", "three letters")]
    [InlineData("#!paro train --ranks 4 --group-size 3", "must divide")]
    [InlineData("#!paro train --launcher slurmx", "one of inproc, mpi, slurm, local, external")]
    [InlineData("#!paro train --stratgey NIG", "unknown option '--stratgey'")]
    [InlineData("#!paro plan --model gpt-5", "llama-65b")]
    [InlineData("#!paro compare --strategies NNN,GNN --steps 1", "not effective")]
    [InlineData("#!rl train --samples 1", "--samples 1: must be at least 2")]
    [InlineData("#!rl train --compare none,magic", "--compare magic: is not a correction")]
    [InlineData("#!rl icepop --seeds 2,2", "--seeds 2,2: repeats a seed")]
    [InlineData("#!infer run", "an input file is required")]
    [InlineData("#!infer run --input missing.jsonl", "the input file 'missing.jsonl' does not exist")]
    [InlineData("#!infer run --input missing.jsonl --workers many", "--workers")]
    public async Task BadInput_FailsTheCell_WithAnActionableMessage_AndTheKernelSurvives(string code, string expected)
    {
        var suffix = code.StartsWith("#!paro plan", StringComparison.Ordinal) ? "" : $" --runs-dir {_runs}";
        var result = await _kernel.SubmitCodeAsync(code + suffix);
        var failed = Assert.IsType<CommandFailed>(result.Events.Last());
        Assert.Contains(expected, failed.Message);
        Assert.Empty(Directory.GetDirectories(_runs));
        AssertSucceeded(await _kernel.SubmitCodeAsync("1 + 1"));
    }
}
