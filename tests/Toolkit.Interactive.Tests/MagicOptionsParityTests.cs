using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Comm;
using Toolkit.Options;
using Toolkit.Paro;
using Toolkit.Quickstart;
using Toolkit.Runtime;

namespace Toolkit.Interactive.Tests;

/// <summary>Every magic subcommand offers exactly its options record's options (and aliases), with the record's
/// descriptions: options exist once.</summary>
public sealed class MagicOptionsParityTests : IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();

    public void Dispose() => _kernel.Dispose();

    public static TheoryData<string, string, Type> Subcommands() => new()
    {
        { "#!toolkit", "info", typeof(ToolkitInfoOptions) },
        { "#!toolkit", "quickstart", typeof(QuickstartOptions) },
        { "#!paro", "plan", typeof(ParoPlanOptions) },
        { "#!paro", "train", typeof(ParoTrainOptions) },
        { "#!paro", "compare", typeof(ParoCompareOptions) },
        { "#!collective", "plan", typeof(CollectivePlanOptions) },
        { "#!rl", "train", typeof(Toolkit.Rl.RlRunOptions) },
        { "#!rl", "icepop", typeof(Toolkit.Rl.IcePopExperimentOptions) },
        { "#!infer", "run", typeof(Toolkit.BatchInference.InferJobOptions) },
        { "#!model", "init", typeof(Toolkit.Models.ModelInitOptions) },
        { "#!model", "info", typeof(Toolkit.Models.ModelInfoOptions) },
        { "#!model", "export", typeof(Toolkit.Models.ModelExportOptions) },
    };

    [Theory]
    [MemberData(nameof(Subcommands))]
    public void Magic_OffersExactlyItsRecordsOptions(string root, string subcommand, Type record)
    {
        var directive = _kernel.KernelInfo.SupportedDirectives.OfType<KernelActionDirective>().Single(d
            => d.Name == root).Subcommands.Single(s => s.Name == subcommand);
        var specs = OptionSchema.For(record);
        var expected = specs.SelectMany(s => s.Alias is null ? new[] { s.Name } : [s.Name,
            s.Alias]).Order(StringComparer.Ordinal);
        Assert.Equal(expected, directive.Parameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        foreach (var spec in specs)
            Assert.StartsWith(spec.Description, directive.Parameters.Single(p => p.Name == spec.Name).Description);
    }
}
