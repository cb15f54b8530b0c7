using Toolkit.Options;

namespace Toolkit.Models;

/// <summary>Which model a job runs: the one <c>--model</c> option of every command
/// (<see cref="ModelSource"/>).</summary>
public sealed record ModelOptions
{
    /// <summary>Help text shared by every command that takes a model.</summary>
    public const string Help
        = "Model: a GPT preset (tiny 36 K parameters, small 0.8 M, medium 10.8 M, base 85 M), a toolkit checkpoint " +
        "folder (runs/<id>/checkpoints/step-K), or a Hugging Face folder (config.json, safetensors, tokenizer) of a " +
            "Llama, Qwen2, Mistral, " +
        "Mixtral, Qwen2-MoE or GPT-2 model.";

    /// <summary>A preset name or a folder. Default tiny.</summary>
    [Option(Help, Name = "model")]
    public string Name { get; init; } = "tiny";

    /// <summary>Resolves and checks the model (a folder is opened and checked each time: resolve once per
    /// job).</summary>
    public ModelSource Resolve() => ModelSource.Resolve(Name);
}
