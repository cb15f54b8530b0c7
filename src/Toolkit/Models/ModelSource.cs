using Toolkit.Checkpoints;
using TorchSharp;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>Where a model's weights come from.</summary>
public enum ModelSourceKind
{
    /// <summary>A GPT preset, initialised from the job's seed.</summary>
    Preset,
    /// <summary>A toolkit checkpoint folder (<c>runs/&lt;id&gt;/checkpoints/step-K</c>), with its model's
    /// description.</summary>
    Checkpoint,
    /// <summary>A Hugging Face folder (<c>config.json</c>, safetensors, tokenizer).</summary>
    HuggingFace,
}

/// <summary>
/// What one <c>--model</c> names, resolved and checked: a GPT preset (<c>tiny</c>, <c>small</c>, <c>medium</c>,
/// <c>base</c>), a toolkit checkpoint folder, or a Hugging Face folder. Every system takes its model through here: the
/// shape, the tokenizer, the weights for one process (<see cref="Load"/>), or a sharded trainer's placeholders and the
/// values its ranks read slice by slice (<see cref="ForTraining"/>).
/// </summary>
public sealed class ModelSource
{
    /// <summary>The sub-folder of a checkpoint that describes its model (config and tokenizer, no weights).</summary>
    public const string DescriptionFolder = "model";

    /// <summary>The description file of a toolkit GPT (used for a mixture-of-experts GPT, which has no Hugging Face
    /// form).</summary>
    public const string GptDescription = "toolkit-gpt.json";

    private ModelSource(string text, ModelSourceKind kind, IModelConfig config, TextTokenizer tokenizer,
        string? folder, string dtype) =>
        (Text, Kind, Config, Tokenizer, Folder, DType) = (text, kind, config, tokenizer, folder, dtype);

    /// <summary>The option's value as given.</summary>
    public string Text { get; }

    /// <summary>Where the weights come from.</summary>
    public ModelSourceKind Kind { get; }

    /// <summary>The shape.</summary>
    public IModelConfig Config { get; }

    /// <summary>The tokenizer (bytes for the GPT presets).</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>The Hugging Face folder or the checkpoint folder; null for a preset.</summary>
    public string? Folder { get; }

    /// <summary>The dtype the weights were stored in where they came from (float32 for presets).</summary>
    public string DType { get; }

    /// <summary>The folder whose config and tokenizer files describe the model (a checkpoint's <c>model/</c>), or
    /// null.</summary>
    public string? DescriptionSource => Kind switch
    {
        ModelSourceKind.HuggingFace => Folder,
        ModelSourceKind.Checkpoint => Path.Combine(Folder!, DescriptionFolder),
        _ => null,
    };

    /// <summary>Resolves a <c>--model</c> value.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Neither a preset nor a model folder (parameter name <c>Name</c>,
    /// the option's).</exception>
    /// <exception cref="InvalidDataException">A folder the toolkit cannot use; the message names the file and the
    /// key.</exception>
    public static ModelSource Resolve(string text, ModelConfigOverride? adjust = null)
    {
        if (GptConfig.Presets.TryGetValue(text, out var preset))
            return new ModelSource(text, ModelSourceKind.Preset, adjust?.Invoke(preset) ?? preset, TextTokenizer.Bytes,
                null, "float32");
        if (adjust is not null)
            throw new ArgumentOutOfRangeException(nameof(ModelOptions.Name), text,
                "is a folder whose model has its own shape; --policy moe shapes a GPT preset");
        if (File.Exists(Path.Combine(text, CheckpointManifest.FileName))) return Checkpoint(text);
        if (File.Exists(Path.Combine(text, HfConfig.FileName)))
        {
            using var hf = HfModel.Open(text);
            return new ModelSource(text, ModelSourceKind.HuggingFace, hf.Config, hf.Tokenizer, text, hf.DType);
        }
        var why = Directory.Exists(text)
            ? $"a folder without {HfConfig.FileName} or {CheckpointManifest.FileName}"
            : "no such preset or folder";
        var presets = string.Join(", ", GptConfig.Presets.Keys);
        throw new ArgumentOutOfRangeException(nameof(ModelOptions.Name), text,
            $"is not a model ({why}): give a preset ({presets}), a checkpoint folder (runs/<id>/checkpoints/step-K) " +
            "or a Hugging Face folder (config.json, safetensors, tokenizer)");
    }

    private static ModelSource Checkpoint(string folder)
    {
        var manifest = CheckpointManifest.Read(folder);
        var description = Path.Combine(folder, DescriptionFolder);
        ModelSource source;
        if (File.Exists(Path.Combine(description, HfConfig.FileName)))
        {
            var (config, dtype) = HfConfig.Read(description);
            var tokenizer = config is GptConfig
                ? TextTokenizer.Bytes : HfTokenizer.Load(description, (config as DecoderConfig)?.EosTokenIds);
            source = new ModelSource(folder, ModelSourceKind.Checkpoint, config, tokenizer, folder, dtype);
        }
        else if (File.Exists(Path.Combine(description, GptDescription)))
            source = new ModelSource(folder, ModelSourceKind.Checkpoint,
                ToolkitJson.Read<GptConfig>(Path.Combine(description, GptDescription)),
                TextTokenizer.Bytes, folder, "float32");
        else
            throw new InvalidDataException(
                $"{folder}: the checkpoint has no {DescriptionFolder}/ folder describing its model (it was written " +
                "before checkpoints recorded it): give the model it was trained with as --model and the checkpoint " +
                "as --resume.");
        if (manifest.Parameters != ModelLayout.Count(source.Config))
            throw new InvalidDataException(
                $"{folder}: the checkpoint holds {manifest.Parameters:N0} parameters; its {DescriptionFolder}/ " +
                $"describes a model of {ModelLayout.Count(source.Config):N0}.");
        return source;
    }

    /// <summary>The model with its weights, in this process: a preset from <paramref name="seed"/>, a folder's or a
    /// checkpoint's weights.</summary>
    public CausalLanguageModel Load(long seed, ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.EnsureInitialized();
        switch (Kind)
        {
            case ModelSourceKind.Preset:
                var gpt = Gpt.Create((GptConfig)Config, seed);
                if (dtype != ScalarType.Float32) gpt.to(dtype);
                return gpt;
            case ModelSourceKind.HuggingFace:
                using (var hf = HfModel.Open(Folder!)) return hf.Load(dtype);
            default:
                return FromValues(Config, new CheckpointParameterSource(Folder!), dtype);
        }
    }

    /// <summary>
    /// The model a sharded trainer wraps, and the values its ranks start from: for a folder or a checkpoint of the
    /// decoder families, placeholders in <paramref name="dtype"/> and a source each rank reads only its slices of (so
    /// no rank holds the whole model); otherwise the model with its weights and no source.
    /// </summary>
    public TrainingModel ForTraining(long seed, ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.EnsureInitialized();
        if (Config is not DecoderConfig d || Kind == ModelSourceKind.Preset)
            return new TrainingModel(Load(seed), null, null);
        if (Kind == ModelSourceKind.Checkpoint)
            return new TrainingModel(Decoder.Placeholder(d, dtype), new CheckpointParameterSource(Folder!), null);
        var hf = HfModel.Open(Folder!);
        return new TrainingModel(Decoder.Placeholder(d, dtype), new FolderParameterSource(hf), hf);
    }

    /// <summary>Writes the model's description (config and tokenizer files, no weights) into
    /// <paramref name="folder"/>.</summary>
    public void WriteDescription(string folder)
    {
        Directory.CreateDirectory(folder);
        if (Config is GptConfig { Experts: > 0 }) ToolkitJson.Write(Path.Combine(folder, GptDescription), Config);
        else HfExport.WriteDescription(folder, Config, DType, DescriptionSource);
    }

    /// <summary>A model of <paramref name="config"/> holding the values of <paramref name="source"/> (a weight sync's
    /// flat vector, a checkpoint).</summary>
    public static CausalLanguageModel FromValues(IModelConfig config, IParameterSource source,
        ScalarType dtype = ScalarType.Float32)
    {
        TorchRuntime.EnsureInitialized();
        var model = CausalLanguageModel.Unfilled(config, dtype);
        FillFrom(model, source);
        if (model is Gpt && dtype != ScalarType.Float32) model.to(dtype);
        // The model outlives the caller's DisposeScope, if any: made inside one, its embeddings' weights were
        // registered there, and the scope's end left the model without them (parameters() then skips them).
        foreach (var p in model.parameters()) p.DetachFromDisposeScope();
        foreach (var b in model.buffers()) b.DetachFromDisposeScope();
        return model;
    }

    /// <summary>A model of <paramref name="config"/> holding a flat fp32 vector of its parameters (module
    /// order).</summary>
    public static CausalLanguageModel FromValues(IModelConfig config, float[] flat)
    {
        using var values = tensor(flat);
        return FromValues(config, new TensorParameterSource(values));
    }

    /// <summary>Overwrites <paramref name="model"/>'s parameters with a flat fp32 vector (module order).</summary>
    internal static void Refill(CausalLanguageModel model, float[] flat)
    {
        using var values = tensor(flat);
        FillFrom(model, new TensorParameterSource(values));
    }

    private static void FillFrom(CausalLanguageModel model, IParameterSource source)
    {
        using var _ = no_grad();
        long offset = 0;
        foreach (var p in model.parameters())
        {
            var values = zeros(p.shape, dtype: p.dtype);
            source.Fill(offset, values.view(-1));
            if (model is Decoder) p.set_(values);                                    // a placeholder takes the tensor
            else
            {
                p.copy_(values);
                values.Dispose();
            }
            offset += p.numel();
        }
    }
}

/// <summary>Adjusts a preset's shape (the RL policy's experts).</summary>
public delegate GptConfig ModelConfigOverride(GptConfig preset);

/// <summary>A model for a sharded trainer and the values it starts from (null: the model's own).</summary>
/// <param name="Model">The model (placeholders when <paramref name="Values"/> is set).</param>
/// <param name="Values">The initial values, read slice by slice, or null.</param>
/// <param name="Keep">What the values read from while training starts (an open folder), disposed with this.</param>
public sealed record TrainingModel(CausalLanguageModel Model, IParameterSource? Values, IDisposable? Keep) : IDisposable
{
    /// <inheritdoc/>
    public void Dispose()
    {
        Keep?.Dispose();
        Model.Dispose();
    }
}
