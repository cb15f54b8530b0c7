using System.Diagnostics;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Runtime;

/// <summary>The one way the toolkit starts child processes: merged output kept however the wait ends, nothing left
/// running, a clear error for a missing program.</summary>
public sealed class ChildProcessTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-child-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Launcher_MergesOutputAndError_IntoTheFile_AndReturnsTheExitCode()
    {
        var file = Path.Combine(_folder.Path, "output.txt");
        var ticks = 0;
        var (code, output) = await ChildProcess.RunLauncherAsync("/bin/sh", ["-c",
            "echo to-out; echo to-err >&2; sleep 0.3; exit 3"], file,
            TimeSpan.FromMilliseconds(50), () => ticks++, gracefulStop: false, CancellationToken.None);
        Assert.Equal(3, code);
        Assert.Contains("to-out", output);
        Assert.Contains("to-err", output);
        Assert.Equal(output, File.ReadAllText(file));
        Assert.True(ticks > 0, "the job is followed while the launcher runs");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cancelled_StopsTheLauncherAndItsChildren_AndStillWritesTheOutput(bool graceful)
    {
        var file = Path.Combine(_folder.Path, "output.txt");
        var pidFile = Path.Combine(_folder.Path, "child.pid");
        using var cancel = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ChildProcess.RunLauncherAsync("/bin/sh",
            ["-c", $"echo started; sleep 60 & echo $! > {pidFile}.tmp; mv {pidFile}.tmp {pidFile}; wait"], file,
                TimeSpan.FromMilliseconds(50),
            // cancelled once the grandchild runs
            () => { if (File.Exists(pidFile)) cancel.Cancel(); }, graceful, cancel.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
        Assert.Contains("started", File.ReadAllText(file));
        var child = int.Parse(File.ReadAllText(pidFile).Trim());
        await Task.Delay(200);
        Assert.False(IsRunning(child), $"the launcher's child {child} outlived it");
    }

    [Fact]
    public void MissingProgram_IsAClearError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => ChildProcess.Start("/nonexistent/tool", [], _ => { }));
        Assert.Contains("/nonexistent/tool", e.Message);
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            var state = File.ReadAllLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("State:",
                StringComparison.Ordinal));
            return state is not null && !state.Contains("zombie", StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
    }
}
