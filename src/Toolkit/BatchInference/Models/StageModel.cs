using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// The causal language model of the score and generate stages, resolved once per worker from <c>--model</c>: a GPT
/// preset (initialised from seed 1, so every worker scores identically), a toolkit checkpoint (any strategy, rank count
/// or precision) or a Hugging Face folder. Each replica builds its own copy from it: a folder's replicas read its
/// weights tensor by tensor, the others copy the flat values built or read once.
/// </summary>
internal sealed class StageModel
{
    private readonly Lazy<float[]> _flat;

    /// <summary>Resolves <paramref name="model"/>.</summary>
    public StageModel(ModelOptions model)
    {
        TorchRuntime.EnsureInitialized();
        Source = model.Resolve();
        _flat = new(() =>
        {
            using var built = Source.Load(Seed);
            using var values = TensorParameterSource.Values(built, TorchSharp.torch.CPU);
            return values.data<float>().ToArray();
        });
    }

    /// <summary>The seed a preset is initialised from.</summary>
    public const int Seed = 1;

    /// <summary>The model.</summary>
    public ModelSource Source { get; }

    /// <summary>A new module holding the weights (one per replica).</summary>
    public CausalLanguageModel Build() => Source.Kind == ModelSourceKind.HuggingFace
        ? Source.Load(Seed) : ModelSource.FromValues(Source.Config, _flat.Value);

    /// <summary>Loads the weights into a generation engine: a folder's tensor by tensor, others from their flat
    /// parameters.</summary>
    public void LoadInto(GenerationEngine engine)
    {
        if (Source.Kind != ModelSourceKind.HuggingFace)
        {
            engine.LoadWeights(_flat.Value, 0);
            return;
        }
        using var folder = HfModel.Open(Source.Folder!);
        engine.LoadWeights(folder, 0);
    }
}
