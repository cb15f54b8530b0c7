using System.CommandLine;
using Toolkit.Models;

namespace Toolkit.Cli;

/// <summary><c>toolkit model init|info|export</c>: Hugging Face folders made, described and written from
/// checkpoints.</summary>
internal static class ModelCommand
{
    public static Command Create() => new("model",
        "Models: a random-weight Hugging Face folder to try, what a model is, a checkpoint as a Hugging Face folder.")
    {
        Init(), Info(), Export(),
    };

    private static Command Init()
    {
        var command = new Command("init",
            "Write a random-weight Hugging Face folder (Llama, Qwen2, Mistral, Mixtral or Qwen2-MoE) with a small " +
                "byte-level BPE tokenizer.");
        var options = new CliOptions<ModelInitOptions>(command, new(), "model init");
        command.SetAction(parse =>
        {
            var folder = ModelInit.Run(options.Bind(parse));
            Facts.Print(new ModelFacts(ModelSource.Resolve(folder)));
            return 0;
        });
        return command;
    }

    private static Command Info()
    {
        var command = new Command("info",
            "Describe a model (a preset, a checkpoint or a Hugging Face folder): family, shape, parameters, " +
                "tokenizer.");
        var options = new CliOptions<ModelInfoOptions>(command, new(), "model info");
        command.SetAction(parse =>
        {
            Facts.Print(new ModelFacts(options.Bind(parse).Model.Resolve()));
            return 0;
        });
        return command;
    }

    private static Command Export()
    {
        var checkpoint = new Argument<string?>("checkpoint") { Description
            = "The checkpoint folder (the same as --checkpoint).", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("export",
            "Write a checkpoint (any strategy, rank count or precision) as a Hugging Face folder that transformers, " +
                "vLLM and the toolkit load.")
        {
            checkpoint,
        };
        var options = new CliOptions<ModelExportOptions>(command, new(), "model export");
        command.SetAction(parse =>
        {
            var o = options.Bind(parse, new ModelExportOptions { Checkpoint = parse.GetValue(checkpoint) });
            var exported = o.Run();
            Console.WriteLine($"exported {o.Checkpoint} to {o.Out}");
            Facts.Print(new ModelFacts(exported));
            return 0;
        });
        return command;
    }
}
