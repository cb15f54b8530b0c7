using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A Hugging Face model folder opened for use: <c>config.json</c> (<see cref="HfConfig"/>), the tokenizer
/// (<see cref="HfTokenizer"/>) and the weights (<see cref="HfWeights"/>, headers only until a tensor is read). Opening
/// checks that every parameter the config implies is there with its shape, that nothing else is, and that the tokenizer
/// fits the vocabulary; each failure names the file and the key.
/// </summary>
public sealed class HfModel : IDisposable
{
    private HfModel(string folder, IModelConfig config, string dtype, TextTokenizer tokenizer, HfWeights weights) =>
        (Folder, Config, DType, Tokenizer, Weights) = (folder, config, dtype, tokenizer, weights);

    /// <summary>The folder.</summary>
    public string Folder { get; }

    /// <summary>The model's shape.</summary>
    public IModelConfig Config { get; }

    /// <summary>The dtype the weights are stored in (<c>torch_dtype</c>: float32, bfloat16 or float16).</summary>
    public string DType { get; }

    /// <summary>The tokenizer.</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>The weight files.</summary>
    public HfWeights Weights { get; }

    /// <summary>Opens and checks a folder.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing.</exception>
    /// <exception cref="InvalidDataException">An unsupported architecture, setting or dtype, a missing, extra or
    /// misshapen tensor, or a tokenizer larger than the vocabulary; the message names the file and the key.</exception>
    public static HfModel Open(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder} does not exist.");
        var (config, dtype) = HfConfig.Read(folder);
        var tokenizer = HfTokenizer.Load(folder, (config as DecoderConfig)?.EosTokenIds);
        if (tokenizer.Size > config.VocabularySize)
            throw new InvalidDataException($"{tokenizer.Source}: the tokenizer has {tokenizer.Size} tokens; " +
                $"{Path.Combine(folder, HfConfig.FileName)} key 'vocab_size' is {config.VocabularySize}.");
        var weights = HfWeights.Open(folder);
        try
        {
            Check(folder, config, weights);
            return new HfModel(folder, config, dtype, tokenizer, weights);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static void Check(string folder, IModelConfig config, HfWeights weights)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape) in ModelLayout.Of(config))
        {
            var stored = HfNames.Checkpoint(config, name);
            expected.Add(stored);
            var (file, entry) = weights.Contains(stored) ? weights.Entry(stored)
                : throw new InvalidDataException(
                    $"{folder}: the weights have no tensor '{stored}', which {HfConfig.FileName} implies.");
            var want = HfNames.IsTransposed(config, name) ? [shape[1], shape[0]] : shape;
            if (!entry.Shape.SequenceEqual(want))
                throw new InvalidDataException(
                    $"{file.Path}: tensor '{stored}' has shape [{string.Join(", ", entry.Shape)}]; " +
                    $"{HfConfig.FileName} implies [{string.Join(", ", want)}].");
        }
        var extra = weights.Names.FirstOrDefault(n => !expected.Contains(n) && !HfNames.IsIgnored(config, n));
        if (extra is not null)
            throw new InvalidDataException(
                $"{folder}: the weights hold tensor '{extra}', which a {config.ModelType} model of " +
                    $"this {HfConfig.FileName} does not have.");
    }

    /// <summary>
    /// The model with its weights in <paramref name="dtype"/>, read one tensor at a time into place (no second copy of
    /// the model is made).
    /// </summary>
    public CausalLanguageModel Load(ScalarType dtype = ScalarType.Float32)
    {
        var model = CausalLanguageModel.Unfilled(Config, dtype);
        try
        {
            using var _ = no_grad();
            foreach (var (name, p) in model.named_parameters())
            {
                using var scope = NewDisposeScope();
                var value = ReadParameter(name, dtype);
                // the placeholder takes the tensor as it was read
                if (model is Decoder) p.set_(value);
                else p.copy_(value);
            }
            if (model is Gpt && dtype != ScalarType.Float32) model.to(dtype);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>A parameter (by the module's name) in the module's layout and <paramref name="dtype"/>.</summary>
    public Tensor ReadParameter(string name, ScalarType dtype)
    {
        var stored = Weights.Read(HfNames.Checkpoint(Config, name), dtype);
        if (!HfNames.IsTransposed(Config, name)) return stored;
        using (stored) return stored.t().contiguous();
    }

    /// <summary>Elements [start, start + size) of a parameter in the module's row-major layout, into
    /// <paramref name="destination"/>.</summary>
    public void ReadParameterElements(string name, long start, Tensor destination)
    {
        if (!HfNames.IsTransposed(Config, name))
        {
            Weights.ReadElements(HfNames.Checkpoint(Config, name), start, destination);
            return;
        }
        using var scope = NewDisposeScope();
        var whole = ReadParameter(name, destination.dtype).view(-1);
        destination.view(-1).copy_(whole.narrow(0, start, destination.numel()));
    }

    /// <inheritdoc/>
    public void Dispose() => Weights.Dispose();
}

/// <summary>Parameter names and shapes of a model of a config, in module order (the order of a flat parameter
/// vector).</summary>
internal static class ModelLayout
{
    private static readonly ConcurrentDictionary<IModelConfig, IReadOnlyList<FlatParameter>> Cache = new();

    /// <summary>The layout (built once per config from a placeholder or template model).</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Of(IModelConfig config) =>
        [.. Flat(config).Select(p => (p.Name, p.Shape))];

    /// <summary>The layout with where each parameter lies in the flat vector (built once per config).</summary>
    public static IReadOnlyList<FlatParameter> Flat(IModelConfig config) => Cache.GetOrAdd(config, c =>
    {
        using var template = CausalLanguageModel.Unfilled(c);
        var list = new List<FlatParameter>();
        long offset = 0;
        foreach (var (name, p) in template.named_parameters())
        {
            list.Add(new FlatParameter(name, p.shape, offset, p.numel()));
            offset += p.numel();
        }
        return list;
    });

    /// <summary>Elements of the flat parameter vector.</summary>
    public static long Count(IModelConfig config) => Flat(config) is [.., var last] ? last.Offset + last.Count : 0;

    /// <summary>Parameters of the largest block (transformer layer): what layer-wise execution gathers at a
    /// time.</summary>
    public static long LargestBlock(IModelConfig config)
    {
        var prefix = config is GptConfig ? "h." : "model.layers.";
        return Of(config).Where(p => p.Name.StartsWith(prefix, StringComparison.Ordinal))
            .GroupBy(p => p.Name[prefix.Length..].Split('.')[0])
            .Max(g => g.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b)));
    }
}

/// <summary>How the toolkit's parameter names map to a Hugging Face checkpoint's.</summary>
internal static class HfNames
{
    private static readonly string[] Conv1D = [".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight",
        ".mlp.c_proj.weight"];

    /// <summary>The checkpoint's name: the same for the decoder families; <c>transformer.</c> before the GPT's (GPT-2's
    /// names).</summary>
    public static string Checkpoint(IModelConfig config,
        string parameter) => config is GptConfig ? "transformer." + parameter : parameter;

    /// <summary>GPT-2 stores its linear maps as Conv1D, [in, out]: the transpose of the toolkit's [out, in].</summary>
    public static bool IsTransposed(IModelConfig config, string parameter) =>
        config is GptConfig && Conv1D.Any(s => parameter.EndsWith(s, StringComparison.Ordinal));

    /// <summary>Checkpoint tensors that are not parameters: a tied output's copy, GPT-2's attention masks, cached RoPE
    /// frequencies.</summary>
    public static bool IsIgnored(IModelConfig config, string name) =>
        name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)
        || (name == "lm_head.weight" && config is GptConfig or DecoderConfig { TieWordEmbeddings: true })
        || (config is GptConfig && (name.EndsWith(".attn.bias",
            StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)));
}

/// <summary>A parameter of a model's flat vector: its name, shape, first element and element count.</summary>
internal sealed record FlatParameter(string Name, long[] Shape, long Offset, long Count);
