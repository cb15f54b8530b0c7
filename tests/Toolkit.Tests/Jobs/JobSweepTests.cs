using Toolkit.Jobs;
using Toolkit.Runs;

namespace Toolkit.Tests.Jobs;

/// <summary>The sweep behind <c>paro compare</c> and <c>rl train --compare</c>.</summary>
public sealed class JobSweepTests
{
    private sealed record Run(int Value) : ICheckedOptions
    {
        public void Check()
        {
            if (Value < 0) throw new ArgumentOutOfRangeException(nameof(Value), Value, "must not be negative");
        }
    }

    private sealed class Recorder : IProgress<(string Run, MetricPoint Point)>, IProgress<JobStatus>
    {
        public List<(string Run, double Value)> Metrics { get; } = [];
        public List<string> States { get; } = [];
        public void Report((string Run, MetricPoint Point) value) => Metrics.Add((value.Run, value.Point.Value));
        public void Report(JobStatus value) => States.Add(value.Message);
    }

    private static Task<int> Body(Run options, IProgress<MetricPoint>? progress, CancellationToken cancel)
    {
        var state = new JobStatus(DateTimeOffset.UnixEpoch, "running", $"value {options.Value}");
        (progress as IProgress<JobStatus>)?.Report(state);
        progress?.Report(new MetricPoint(DateTimeOffset.UnixEpoch, 0, 0, "m", options.Value));
        return Task.FromResult(options.Value * 10);
    }

    [Fact]
    public async Task Runs_InOrder_TaggingMetricsAndStatesWithTheRunsName()
    {
        var recorder = new Recorder();
        var results = await JobSweep.RunAsync([("a", new Run(1)), ("b", new Run(2))], Body, recorder);
        Assert.Equal([10, 20], results);
        Assert.Equal([("a", 1.0), ("b", 2.0)], recorder.Metrics);
        Assert.Equal(["a: value 1", "b: value 2"], recorder.States);
    }

    [Fact]
    public async Task ChecksEveryRun_BeforeTheFirstStarts()
    {
        var started = 0;
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => JobSweep.RunAsync(
            [("good", new Run(1)), ("bad", new Run(-1))],
            (Run o, IProgress<MetricPoint>? p, CancellationToken c) => { started++; return Task.FromResult(0); }));
        Assert.Equal("Value", e.ParamName);
        Assert.Equal(0, started);
        await Assert.ThrowsAsync<ArgumentException>(() => JobSweep.RunAsync<Run, int>([], Body));
    }
}
