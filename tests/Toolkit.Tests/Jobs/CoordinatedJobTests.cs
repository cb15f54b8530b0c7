using Toolkit.Jobs;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Jobs;

/// <summary>
/// The job host's second shape, a coordinator and its workers, with a small job of its own: the host checks the
/// options before any folder exists, makes the run folder (named by the job when it asks), writes the coordinator's
/// result, and resumes in the same folder. Batch inference's tests run the shape under mpiexec and Slurm.
/// </summary>
public sealed class CoordinatedJobTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-coordinated-");

    public void Dispose() => _runs.Dispose();

    [Fact]
    public async Task InTheLaunchingProcess_TheCoordinatorsResultIsWrittenToTheRunFolder()
    {
        var result = await JobHost.RunAsync(new CountJob(), Options(items: 5));
        Assert.Equal(15, result.Sum);   // 1 + 2 + 3 + 4 + 5, counted by the coordinator
        var run = Directory.GetDirectories(_runs.Path).Single();
        Assert.StartsWith("count-", Path.GetFileName(run));
        Assert.Equal(result, JobHost.ReadResult<CountResult>(run));
        Assert.Contains("\"kind\": \"count\"", File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.False(result.WorkersAreRanks);
    }

    [Fact]
    public async Task Resume_RunsAgainInTheSameFolder_WithTheNewOptions()
    {
        var first = await JobHost.RunAsync(new CountJob(), Options(items: 2) with { Name = "fixed" });
        var folder = Path.Combine(_runs.Path, "fixed");
        Assert.Equal(folder, first.RunPath);
        var again = await JobHost.ResumeAsync(new CountJob(), folder, Options(items: 3));
        Assert.Equal((6, folder), (again.Sum, again.RunPath));
        Assert.Single(Directory.GetDirectories(_runs.Path));
        Assert.Contains("resumed", File.ReadAllText(Path.Combine(folder, "log.txt")));
        Assert.Equal(6, JobHost.ReadResult<CountResult>(folder).Sum);
    }

    [Fact]
    public async Task InvalidOptions_AreRefusedBeforeAnyFolderExists()
    {
        var refused = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            JobHost.RunAsync(new CountJob(), Options(items: 0)));
        Assert.Equal("Items", refused.ParamName);
        Assert.Empty(Directory.GetDirectories(_runs.Path));
    }

    [Fact]
    public async Task Cancelling_StopsTheCoordinator_AndKeepsTheFolder()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            JobHost.RunAsync(new CountJob(), Options(items: 1) with { Wait = true }, cancel.Token));
        var run = Directory.GetDirectories(_runs.Path).Single();
        Assert.False(File.Exists(Path.Combine(run, JobHost.ResultFile)));
        Assert.Contains("failed", File.ReadAllText(Path.Combine(run, "log.txt")));
    }

    private CountOptions Options(int items) => new()
    {
        Items = items, Launch = new LaunchOptions { RunsDirectory = _runs.Path, Ranks = 1, GroupSize = 1 },
    };
}

/// <summary>Options of <see cref="CountJob"/>.</summary>
public sealed record CountOptions : IJobOptions
{
    public int Items { get; init; } = 1;

    public string? Name { get; init; }

    public bool Wait { get; init; }

    public LaunchOptions Launch { get; init; } = new();

    public void Check()
    {
        if (Items < 1) throw new ArgumentOutOfRangeException(nameof(Items), Items, "must be at least 1");
    }
}

/// <summary>What <see cref="CountJob"/>'s coordinator returns.</summary>
public sealed record CountResult(int Sum, string RunPath, bool WorkersAreRanks);

/// <summary>A coordinator that adds 1..Items and returns; it has no workers to start.</summary>
public sealed class CountJob : CoordinatedJob<CountOptions, CountResult>
{
    public override string Kind => "count";

    public override string? FolderName(CountOptions options) => options.Name;

    public override async Task<CountResult> CoordinateAsync(CoordinatorContext<CountOptions> context)
    {
        if (context.Options.Wait) await Task.Delay(Timeout.Infinite, context.CancellationToken);
        context.Log($"counting {context.Options.Items}");
        return new CountResult(Enumerable.Range(1, context.Options.Items).Sum(), context.RunPath,
            context.WorkersAreRanks);
    }

    public override Task<bool> WorkAsync(WorkerContext<CountOptions> context) => Task.FromResult(true);
}
