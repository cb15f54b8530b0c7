using System.Runtime.CompilerServices;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Interactive.Magic;
using Toolkit.Runtime;

namespace Toolkit.Interactive;

/// <summary>
/// The kernel extension: registers <c>#!toolkit</c> and its subcommands, prepares TorchSharp's native runtime before
/// any notebook code touches it, and fixes Plotly.NET's FSharp.Core binding. Loaded automatically by <c>#r
/// "nuget:LmToolkit.Interactive"</c>; every magic wraps a public API of the Toolkit library.
/// </summary>
public sealed class ToolkitKernelExtension : IKernelExtension
{
    /// <inheritdoc/>
    public Task OnLoadAsync(Kernel kernel)
    {
        Load(kernel);
        return Task.CompletedTask;
    }

    /// <summary>Registers the magic commands on <paramref name="kernel"/> (the root kernel). Idempotent.</summary>
    public static void Load(Kernel kernel)
    {
        FSharpCoreRedirect.Install();
        LoadCore(kernel);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]   // Plotly types must not be touched before the redirect exists
    private static void LoadCore(Kernel kernel)
    {
        KernelActionDirective info = ToolkitInfoCommand.CreateDirective(),
            quickstart = ToolkitQuickstartCommand.CreateDirective(), show = ToolkitShowCommand.CreateDirective();
        if (!AddRoot<ToolkitHelpCommand>(kernel, "#!toolkit", "Toolkit commands: info, quickstart, show.", info,
            quickstart, show)) return;   // already loaded
        kernel.AddDirective<ToolkitInfoCommand>(info, ToolkitInfoCommand.HandleAsync);
        kernel.AddDirective<ToolkitQuickstartCommand>(quickstart, ToolkitQuickstartCommand.HandleAsync);
        kernel.AddDirective<ToolkitShowCommand>(show, ToolkitShowCommand.HandleAsync);

        KernelActionDirective plan = ParoPlanCommand.CreateDirective(), train = ParoTrainCommand.CreateDirective(),
            compare = ParoCompareCommand.CreateDirective();
        AddRoot<ParoHelpCommand>(kernel, "#!paro", "PaRO sharded data-parallel training: plan, train, compare.", plan,
            train, compare);
        kernel.AddDirective<ParoPlanCommand>(plan, ParoPlanCommand.HandleAsync);
        kernel.AddDirective<ParoTrainCommand>(train, ParoTrainCommand.HandleAsync);
        kernel.AddDirective<ParoCompareCommand>(compare, ParoCompareCommand.HandleAsync);

        KernelActionDirective rlTrain = RlTrainCommand.CreateDirective(), rlIcePop = RlIcePopCommand.CreateDirective();
        AddRoot<RlHelpCommand>(kernel, "#!rl",
            "Ring-1T style RL: train (GRPO with IcePop, TIS or MIS; synchronous or C3PO++ rollouts), icepop (the " +
                "experiment: corrections against fp32 rollouts over seeds).", rlTrain, rlIcePop);
        kernel.AddDirective<RlTrainCommand>(rlTrain, RlTrainCommand.HandleAsync);
        kernel.AddDirective<RlIcePopCommand>(rlIcePop, RlIcePopCommand.HandleAsync);

        var inferRun = InferRunCommand.CreateDirective();
        AddRoot<InferHelpCommand>(kernel, "#!infer",
            "Elastic batch inference: run (exactly-once, resumable, pipelined workers).", inferRun);
        kernel.AddDirective<InferRunCommand>(inferRun, InferRunCommand.HandleAsync);

        KernelActionDirective modelInit = ModelInitCommand.CreateDirective(),
            modelInfo = ModelInfoCommand.CreateDirective(),
            modelExport = ModelExportCommand.CreateDirective();
        AddRoot<ModelHelpCommand>(kernel, "#!model",
            "Models: init (a random-weight Hugging Face folder), info, export (a checkpoint as a Hugging Face folder).",
            modelInit, modelInfo, modelExport);
        kernel.AddDirective<ModelInitCommand>(modelInit, ModelInitCommand.HandleAsync);
        kernel.AddDirective<ModelInfoCommand>(modelInfo, ModelInfoCommand.HandleAsync);
        kernel.AddDirective<ModelExportCommand>(modelExport, ModelExportCommand.HandleAsync);

        var collectivePlan = CollectivePlanCommand.CreateDirective();
        AddRoot<CollectiveHelpCommand>(kernel, "#!collective",
            "Collective algorithms (ring, hierarchical, HO-Ring): plan.", collectivePlan);
        kernel.AddDirective<CollectivePlanCommand>(collectivePlan, CollectivePlanCommand.HandleAsync);

        OfflineCharts.Register();
        ResultFormatters.Register();
        string status;
        try
        {
            var torch = TorchRuntime.EnsureInitialized();
            status = $"TorchSharp {torch.TorchSharpVersion} ready ({(torch.Patched ? "C++ runtime compatibility " +
                "copy" : "as shipped")}).";
        }
        catch (TorchRuntimeException e)
        {
            status = $"TorchSharp is not usable: {e.Message}";
        }
        KernelInvocationContext.Current?.DisplayAs(
            "Toolkit extension loaded: `#!toolkit` (info, quickstart, show), `#!paro` (plan, train, compare), " +
            $"`#!rl` (train), `#!infer` (run), `#!model` (init, info, export), `#!collective` (plan). {status}",
            "text/markdown");
        // once per session: charts draw with this copy
        KernelInvocationContext.Current?.Display(OfflineCharts.Loader(), "text/html");
    }

    /// <summary>Registers a root directive whose bare use prints its subcommands; false if it already exists (the
    /// extension was loaded before).</summary>
    private static bool AddRoot<THelp>(Kernel kernel, string name, string description,
        params KernelActionDirective[] subcommands) where THelp : KernelCommand
    {
        if (kernel.KernelInfo.SupportedDirectives.Any(d => d.Name == name)) return false;
        var root = new KernelActionDirective(name, description);
        foreach (var subcommand in subcommands) root.Subcommands.Add(subcommand);
        kernel.AddDirective<THelp>(root, (_, context) =>
        {
            context.DisplayAs(Usage(root), "text/markdown");
            return Task.CompletedTask;
        });
        return true;
    }

    private static string Usage(KernelActionDirective root) =>
        $"**{root.Name}** subcommands:\n\n" + string.Join("\n", root.Subcommands.Select(s =>
            $"- `{root.Name} {s.Name}` {string.Join(" ", s.Parameters.Select(p => p.Required ? $"{p.Name} " +
                $"<value>" : $"[{p.Name} <value>]"))}: {s.Description}"));
}
