using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Events;

namespace Toolkit.Interactive.Tests;

/// <summary>Assertions over a submission's kernel events, shared by the magic-command tests.</summary>
internal static class KernelResults
{
    public static void AssertSucceeded(KernelCommandResult result) =>
        Assert.True(result.Events.Last() is CommandSucceeded, string.Join("\n",
            result.Events.OfType<CommandFailed>().Select(f => f.Message)));

    public static List<string> Html(KernelCommandResult result) =>
        result.Events.OfType<DisplayEvent>().SelectMany(e => e.FormattedValues).Where(v
            => v.MimeType == "text/html").Select(v => v.Value).ToList();
}
