using System.Text.Json;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Events;
using Toolkit.Tests.Support;
using static Toolkit.Interactive.Tests.KernelResults;

namespace Toolkit.Interactive.Tests;

/// <summary>Two emulated nodes running a real Slurm (build/emulate-cluster.sh --slurm; needs root), for
/// <see cref="SlurmMagicTests"/>.</summary>
public sealed class EmulatedSlurmForTheKernel : IDisposable
{
    public SlurmCluster Cluster { get; } = SlurmCluster.Emulated(nodes: 2, cpus: 2);

    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// <c>#!paro train --launcher slurm</c> from a notebook cell, against a real two-node Slurm: the ranks run on both
/// emulated nodes, the charts update live, the job's state (pending reason, running nodes, end) is shown above them;
/// cancelling the cell cancels the Slurm job.
/// </summary>
public sealed class SlurmMagicTests(EmulatedSlurmForTheKernel slurm) : IClassFixture<EmulatedSlurmForTheKernel>,
    IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();
    private readonly string _runs = Directory.CreateTempSubdirectory("toolkit-slurm-magic-").FullName;

    public void Dispose()
    {
        _kernel.Dispose();
        Directory.Delete(_runs, recursive: true);
    }

    [Fact]
    public async Task Train_OnTwoSlurmNodes_ChartsLive_AndShowsTheJobsState()
    {
        var result
            = await _kernel.SubmitCodeAsync(
                $"#!paro train --strategy IGG --launcher slurm --nodes 2 --ranks-per-node 2 --steps 4 " +
                    $"--runs-dir {_runs}");
        AssertSucceeded(result);
        Assert.Contains(Html(result), h => h.Contains("PaRO IGG"));
        var statusLines = result.Events.OfType<DisplayEvent>().SelectMany(e => e.FormattedValues).Select(v
            => v.Value).Where(v => v.Contains("toolkit-status")).ToList();
        Assert.Contains(statusLines, v => v.Contains("running on node[0-1]"));
        Assert.Contains("COMPLETED", statusLines[^1]);
        Assert.Contains(result.Events.OfType<DisplayedValueUpdated>(),
            u => u.FormattedValues.Any(v => v.Value.Contains("Plotly.newPlot")));
        var run = Assert.Single(Directory.GetDirectories(_runs));
        var hosts = JsonDocument.Parse(File.ReadAllText(Path.Combine(run,
            "hosts.json"))).RootElement.EnumerateArray().Select(h => h.GetProperty("host").GetString()).ToList();
        Assert.Equal(["node0", "node0", "node1", "node1"], hosts);
    }

    [Fact]
    public async Task CancellingTheCell_CancelsTheSlurmJob()
    {
        var submit
            = _kernel.SendAsync(new SubmitCode(
                $"#!paro train --strategy NGG --launcher slurm --nodes 2 --ranks-per-node 2 --steps 100000 " +
                    $"--runs-dir {_runs}"));
        var deadline = DateTime.UtcNow.AddMinutes(2);
        string? run = null;
        while (DateTime.UtcNow < deadline && !submit.IsCompleted)
        {
            run = Directory.GetDirectories(_runs).SingleOrDefault();
            if (run is not null && Directory.GetFiles(run,
                "metrics.rank-0.jsonl").FirstOrDefault() is { } metrics && new FileInfo(metrics).Length > 0) break;
            await Task.Delay(250);
        }
        Assert.False(submit.IsCompleted, "the job ended before it could be cancelled");
        await _kernel.SendAsync(new Cancel());
        await submit;
        var jobId = JsonDocument.Parse(File.ReadAllText(Path.Combine(run!, "slurm",
            "job.json"))).RootElement.GetProperty("jobId").GetString()!;
        for (var i = 0; i < 60 && !slurm.Cluster.Command("scontrol", "show", "job",
            jobId).Output.Contains("JobState=CANCELLED"); i++) await Task.Delay(500);
        Assert.Contains("JobState=CANCELLED", slurm.Cluster.Command("scontrol", "show", "job", jobId).Output);
    }
}
