using System.Collections.Concurrent;
using Microsoft.DotNet.Interactive;
using Microsoft.AspNetCore.Html;
using Microsoft.DotNet.Interactive.Formatting;
using Toolkit.Jobs;

namespace Toolkit.Interactive;

/// <summary>
/// Shows a value that re-renders while a job runs, in place. Updates happen on the handler's own async flow (where
/// <see cref="KernelInvocationContext.Current"/> is set), at most once per <c>interval</c>, plus once at the end; the
/// handler awaits the job, because the kernel drops updates published after a cell completes.
/// </summary>
internal static class LiveDisplay
{
    /// <param name="context">The cell's context.</param>
    /// <param name="job">The running job.</param>
    /// <param name="render">Draws the value (charts) from what has been collected so far.</param>
    /// <param name="interval">At most one update per interval.</param>
    /// <param name="status">If given, the job's latest state (a Slurm job pending with its reason, running, ended) is
    /// shown in a line above the value.</param>
    public static async Task<T> RunAsync<T>(KernelInvocationContext context, Task<T> job, Func<object> render,
        TimeSpan interval, StatusCollector? status = null)
    {
        DisplayedValue? statusLine = null;
        string? shown = null;
        void ShowStatus()
        {
            // every state reported since the last look, in order: a short one (a job running for less than the
            // display's interval) is shown too
            foreach (var s in status?.Drain() ?? [])
            {
                if (s.Message == shown) continue;
                shown = s.Message;
                var text = System.Net.WebUtility.HtmlEncode($"{s.Time.ToLocalTime():HH:mm:ss} {s.Message}");
                var html = new HtmlString(
                    $"<div class=\"toolkit-status\" style=\"font-family:monospace\">{text}</div>");
                if (statusLine is null) statusLine = context.Display(html, HtmlFormatter.MimeType);
                else statusLine.Update(html);
            }
        }
        ShowStatus();
        var display = context.Display(render(), HtmlFormatter.MimeType);
        try
        {
            while (!job.IsCompleted)
            {
                await Task.WhenAny(job, Task.Delay(interval, context.CancellationToken));
                if (context.CancellationToken.IsCancellationRequested) break;
                ShowStatus();
                display.Update(render());
            }
            var result = await job;
            display.Update(render());
            return result;
        }
        finally
        {
            ShowStatus();   // the last state: completed, failed with the scheduler's reason, or cancelled
        }
    }
}

/// <summary>Keeps the <see cref="JobStatus"/>es a job reported until they are shown (jobs report them to a progress
/// that also implements <see cref="IProgress{JobStatus}"/>).</summary>
internal class StatusCollector : IProgress<JobStatus>
{
    private readonly ConcurrentQueue<JobStatus> _unseen = new();

    public void Report(JobStatus value) => _unseen.Enqueue(value);

    /// <summary>The states reported since the last call, oldest first.</summary>
    public IReadOnlyList<JobStatus> Drain()
    {
        var states = new List<JobStatus>();
        while (_unseen.TryDequeue(out var state)) states.Add(state);
        return states;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that collects items synchronously from any thread.</summary>
internal sealed class Collector<T> : StatusCollector, IProgress<T>
{
    private readonly ConcurrentQueue<T> _items = new();

    public void Report(T value) => _items.Enqueue(value);

    public IReadOnlyList<T> Snapshot() => _items.ToArray();
}
