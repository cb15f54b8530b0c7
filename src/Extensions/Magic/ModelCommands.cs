using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Models;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!model</c> alone: lists the subcommands.</summary>
public sealed class ModelHelpCommand : KernelDirectiveCommand;

/// <summary><c>#!model init --arch llama --out DIR ...</c>: the twin of <see cref="ModelInit.Run"/> (and <c>toolkit
/// model init</c>).</summary>
public sealed class ModelInitCommand : OptionsMagicCommand<ModelInitOptions>
{
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("init", "Write a random-weight Hugging Face folder (Llama, Qwen2, Mistral, Mixtral or " +
            "Qwen2-MoE) with a small BPE tokenizer.", new ModelInitOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "model init");

    internal static Task HandleAsync(ModelInitCommand command, KernelInvocationContext context)
    {
        var folder = ModelInit.Run(command.Bind(new(), "model init"));
        context.DisplayAs(Html.Table(new ModelFacts(ModelSource.Resolve(folder))), "text/html");
        return Task.CompletedTask;
    }
}

/// <summary><c>#!model info --model M</c>: the twin of <see cref="ModelFacts"/> (and <c>toolkit model
/// info</c>).</summary>
public sealed class ModelInfoCommand : OptionsMagicCommand<ModelInfoOptions>
{
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("info",
            "Describe a model (a preset, a checkpoint or a Hugging Face folder): family, shape, parameters, " +
                "tokenizer.", new ModelInfoOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "model info");

    internal static Task HandleAsync(ModelInfoCommand command, KernelInvocationContext context)
    {
        context.DisplayAs(Html.Table(new ModelFacts(command.Bind(new(), "model info").Model.Resolve())), "text/html");
        return Task.CompletedTask;
    }
}

/// <summary><c>#!model export --checkpoint C --out DIR</c>: the twin of <see cref="ModelExportOptions.Run"/> (and
/// <c>toolkit model export</c>).</summary>
public sealed class ModelExportCommand : OptionsMagicCommand<ModelExportOptions>
{
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("export",
            "Write a checkpoint (any strategy, rank count or precision) as a Hugging Face folder.",
                new ModelExportOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "model export");

    internal static Task HandleAsync(ModelExportCommand command, KernelInvocationContext context)
    {
        var exported = command.Bind(new(), "model export").Run();
        context.DisplayAs(Html.Table(new ModelFacts(exported)), "text/html");
        return Task.CompletedTask;
    }
}
