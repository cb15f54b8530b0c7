using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Comm;
using Toolkit.Reporting;
using Toolkit.Runtime;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!toolkit info [--device auto|cpu|cuda[:i]]</c>: the twin of
/// <see cref="ToolkitInfo.Collect"/>.</summary>
public sealed class ToolkitInfoCommand : OptionsMagicCommand<ToolkitInfoOptions>
{
    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("info",
            "Show toolkit and TorchSharp versions, device, MPI library, cores, and an in-process all-reduce " +
                "bandwidth chart.", new ToolkitInfoOptions());

    internal static Task HandleAsync(ToolkitInfoCommand command, KernelInvocationContext context)
    {
        var info = ToolkitInfo.Collect(command.Bind(new(), "toolkit info").Device);
        context.DisplayAs(Html.Table("Toolkit", info.Rows()), "text/html");
        var samples = BandwidthProbe.InProcess(2, [64 << 10, 1 << 20, 8 << 20], repeats: 3);
        context.Display(Charts.Bars("In-process all-reduce bus bandwidth (2 ranks)",
            samples.Select(s => $"{s.Bytes >> 10} KiB").ToList(), samples.Select(s => s.BusBandwidth / 1e9).ToList(),
                "GB/s"), "text/html");
        return Task.CompletedTask;
    }
}
