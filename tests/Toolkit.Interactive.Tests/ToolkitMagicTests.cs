using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Events;
using static Toolkit.Interactive.Tests.KernelResults;

namespace Toolkit.Interactive.Tests;

public sealed class ToolkitMagicTests : IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-magic-runs-").FullName;

    public void Dispose()
    {
        _kernel.Dispose();
        Directory.Delete(_runs, recursive: true);
    }

    [Fact]
    public async Task Info_ShowsVersionsTable_AndOnePlotlyChart()
    {
        var result = await _kernel.SubmitCodeAsync("#!toolkit info");
        AssertSucceeded(result);
        var html = Html(result);
        Assert.Contains(html, h => h.Contains("TorchSharp") && h.Contains("MPI library") && h.Contains("cores"));
        Assert.Single(html, h => h.Contains("Plotly.newPlot"));
    }

    [Fact]
    public async Task Quickstart_UpdatesOneChartInPlace_ThenShowsTheResult()
    {
        var result
            = await _kernel.SubmitCodeAsync(
                $"#!toolkit quickstart --ranks 2 --group-size 1 --steps 30 --runs-dir {_runs}");
        AssertSucceeded(result);
        var produced = result.Events.OfType<DisplayedValueProduced>().First(e => e.FormattedValues.Any(v
            => v.Value.Contains("Plotly.newPlot")));
        var updates = result.Events.OfType<DisplayedValueUpdated>().ToList();
        Assert.NotEmpty(updates);
        Assert.All(updates, u => Assert.Equal(produced.ValueId, u.ValueId));
        var last = updates[^1].FormattedValues.Single().Value;
        // the last update holds the finished curves
        Assert.Contains("\"name\":\"rank 1\"", last);
        // a title for people, not a metric's key
        Assert.Contains("Quickstart: 2 ranks in groups of", last);
        Assert.DoesNotContain("comm.inter_bytes", last);
        // ranks named once
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(last, "\"showlegend\":false").Count);
        Assert.Contains(Html(result), h => h.Contains("Quickstart run") && h.Contains("report.html"));
        Assert.Single(Directory.GetDirectories(_runs));
    }

    [Fact]
    public async Task UnknownOption_FailsWithTheValidList_AndTheKernelStaysUsable()
    {
        var result = await _kernel.SubmitCodeAsync("#!toolkit quickstart --bogus 1");
        var failed = Assert.IsType<CommandFailed>(result.Events.Last());
        Assert.Contains("unknown option '--bogus'", failed.Message);
        Assert.Contains(
            "--group-size, --hidden, --inter-bandwidth, --inter-latency, --launcher, --max-restarts, " +
                "--nics-per-node, --nodes, --np, --partition, --ranks, --ranks-per-node, --runs-dir, --seed, " +
                "--slurm-args, --slurm-submit, --steps, --time", failed.Message);

        var next = await _kernel.SubmitCodeAsync("1 + 1");
        AssertSucceeded(next);
        Assert.Equal(2, next.Events.OfType<ReturnValueProduced>().Single().Value);
    }

    [Fact]
    public async Task InvalidValue_FailsBeforeAnyWork_NamingTheOption()
    {
        var result = await _kernel.SubmitCodeAsync($"#!toolkit quickstart --ranks 3 --group-size 2 --runs-dir {_runs}");
        var failed = Assert.IsType<CommandFailed>(result.Events.Last());
        Assert.Contains("--group-size 2: must divide --ranks (3)", failed.Message);
        Assert.Empty(Directory.GetDirectories(_runs));
    }

    [Fact]
    public async Task UnknownSubcommandOption_OnInfo_IsRejectedToo()
    {
        var result = await _kernel.SubmitCodeAsync("#!toolkit info --devcie cpu");
        var failed = Assert.IsType<CommandFailed>(result.Events.Last());
        Assert.Contains("unknown option '--devcie'", failed.Message);
        Assert.Contains("--device", failed.Message);
    }

    [Fact]
    public async Task Root_WithoutSubcommand_ListsTheSubcommands()
    {
        var result = await _kernel.SubmitCodeAsync("#!toolkit");
        AssertSucceeded(result);
        var text = result.Events.OfType<DisplayedValueProduced>().SelectMany(e => e.FormattedValues).Single(v
            => v.MimeType == "text/markdown").Value;
        Assert.Contains("#!toolkit info", text);
        Assert.Contains("#!toolkit quickstart", text);
        Assert.Contains("#!toolkit show", text);
    }

    [Fact]
    public async Task Show_ReplotsAFinishedRun_AndRejectsAnUnknownMetric()
    {
        var job = await Toolkit.Quickstart.QuickstartJob.RunAsync(new Toolkit.Quickstart.QuickstartOptions { Launch
            = new() { Ranks = 2, GroupSize = 1, RunsDirectory = _runs }, Steps = 3 });
        var shown = await _kernel.SubmitCodeAsync($"#!toolkit show --run {job.RunPath} --metric loss");
        AssertSucceeded(shown);
        Assert.Single(Html(shown), h => h.Contains("Plotly.newPlot"));

        var wrong = await _kernel.SubmitCodeAsync($"#!toolkit show --run {job.RunPath} --metric accuracy");
        var failed = Assert.IsType<CommandFailed>(wrong.Events.Last());
        Assert.Contains("has no metric 'accuracy'", failed.Message);
    }

    [Fact]
    public void Load_Twice_IsIdempotent()
    {
        ToolkitKernelExtension.Load(_kernel);
        Assert.Single(_kernel.KernelInfo.SupportedDirectives, d => d.Name == "#!toolkit");
    }
}
