using System.Collections.Concurrent;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Formatting;

namespace Toolkit.Interactive;

/// <summary>
/// Shows a value that re-renders while a job runs, in place. Updates happen on the handler's own
/// async flow (where <see cref="KernelInvocationContext.Current"/> is set), at most once per
/// <c>interval</c>, plus once at the end; the handler awaits the job, because the kernel drops
/// updates published after a cell completes.
/// </summary>
internal static class LiveDisplay
{
    public static async Task<T> RunAsync<T>(KernelInvocationContext context, Task<T> job, Func<object> render, TimeSpan interval)
    {
        var display = context.Display(render(), HtmlFormatter.MimeType);
        while (!job.IsCompleted)
        {
            await Task.WhenAny(job, Task.Delay(interval, context.CancellationToken));
            if (context.CancellationToken.IsCancellationRequested) break;
            display.Update(render());
        }
        var result = await job;
        display.Update(render());
        return result;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that collects items synchronously from any thread.</summary>
internal sealed class Collector<T> : IProgress<T>
{
    private readonly ConcurrentQueue<T> _items = new();

    public void Report(T value) => _items.Enqueue(value);

    public IReadOnlyList<T> Snapshot() => _items.ToArray();
}
