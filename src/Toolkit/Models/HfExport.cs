using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// Writes a model as a Hugging Face folder that transformers, vLLM and this toolkit load: <c>config.json</c>,
/// <c>generation_config.json</c>, the tokenizer (the source folder's files, or the byte tokenizer of a GPT preset as a
/// 256-token byte-level BPE) and the weights under the checkpoint's own names, one tensor at a time.
/// </summary>
internal static class HfExport
{
    /// <summary>Tokenizer files copied from a source folder when present.</summary>
    public static IReadOnlyList<string> TokenizerFiles { get; } =
        ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
            "merges.txt", "generation_config.json"];

    /// <summary>Writes the folder.</summary>
    /// <param name="folder">The output folder (created; its weight files replaced).</param>
    /// <param name="config">The model's shape.</param>
    /// <param name="parameter">A parameter's values by the module's name, in the module's layout (any float dtype;
    /// tensors made by the call are freed once written, the caller's own are left alone).</param>
    /// <param name="dtype">The stored dtype: float32, bfloat16 or float16.</param>
    /// <param name="tokenizerSource">A model folder whose config and tokenizer files are copied, or null (GPT presets:
    /// a config made from the shape and the byte tokenizer).</param>
    /// <param name="maxShardBytes">Largest weight file before the weights are sharded with an index.</param>
    public static void Write(string folder, IModelConfig config, Func<string, Tensor> parameter,
        string dtype = "float32", string? tokenizerSource = null, long maxShardBytes = 4L << 30)
    {
        _ = StoredType(dtype);                                                      // before anything is written
        WriteDescription(folder, config, dtype, tokenizerSource);
        WriteWeights(folder, config, parameter, dtype, maxShardBytes);
    }

    /// <summary>Writes the folder from a flat vector of the model's values (a checkpoint, a trained policy), one
    /// parameter at a time.</summary>
    public static void Write(string folder, IModelConfig config, IParameterSource values, string dtype,
        string? tokenizerSource, long maxShardBytes = 4L << 30)
    {
        var flat = ModelLayout.Flat(config).ToDictionary(p => p.Name, StringComparer.Ordinal);
        Write(folder, config, name =>
        {
            var value = zeros(flat[name].Shape);
            values.Fill(flat[name].Offset, value.view(-1));
            return value;
        }, dtype, tokenizerSource, maxShardBytes);
    }

    /// <summary>Writes the weights alone (see
    /// <see cref="Write(string, IModelConfig, Func{string, Tensor}, string, string?, long)"/>).</summary>
    public static void WriteWeights(string folder, IModelConfig config, Func<string, Tensor> parameter,
        string dtype = "float32", long maxShardBytes = 4L << 30)
    {
        var type = StoredType(dtype);
        var layout = ModelLayout.Of(config)
            .Select(p => (p.Name, Stored: HfNames.Checkpoint(config, p.Name),
                Transposed: HfNames.IsTransposed(config, p.Name), p.Shape))
            .ToList();
        var stored = layout.Select(p => (p.Stored, type, p.Transposed ? [p.Shape[1], p.Shape[0]] : p.Shape)).ToList();
        HfWeights.Write(folder, stored, i =>
        {
            using var scope = NewDisposeScope();
            // the caller's tensor is never the one written and freed
            var value = parameter(layout[i].Name).to(type, copy: true);
            return (layout[i].Transposed ? value.t().contiguous() : value.contiguous()).MoveToOuterDisposeScope();
        }, maxShardBytes);
    }

    /// <summary>
    /// Writes a model's description without weights: <c>config.json</c> (the source folder's own, with its dtype set,
    /// or one made from the shape), the tokenizer files (the source's, or the GPT's byte tokenizer) and
    /// <c>generation_config.json</c> (the source's, or one made from the shape).
    /// </summary>
    /// <exception cref="ArgumentException">A mixture-of-experts GPT, which has no Hugging Face
    /// architecture.</exception>
    public static void WriteDescription(string folder, IModelConfig config, string dtype, string? source)
    {
        WriteConfig(folder, config, dtype, source);
        var copied = source is not null && Path.GetFullPath(source) != Path.GetFullPath(folder);
        if (copied)
        {
            foreach (var name in TokenizerFiles)
                if (File.Exists(Path.Combine(source!, name)))
                    File.Copy(Path.Combine(source!, name), Path.Combine(folder, name), overwrite: true);
        }
        else if (source is null)
        {
            ByteLevelBpe.Write(folder, [.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b })], [], [], bos: null,
                eos: null);
        }
        if (!(copied && File.Exists(Path.Combine(source!, GenerationConfigFile))))
            WriteGenerationConfig(folder, config);
    }

    /// <summary><c>config.json</c>: the keys of <paramref name="source"/>'s own (a model folder) with the stored dtype
    /// set, or, without a source, one made from the shape.</summary>
    /// <exception cref="ArgumentException">A mixture-of-experts GPT, which has no Hugging Face
    /// architecture.</exception>
    public static void WriteConfig(string folder, IModelConfig config, string dtype, string? source = null)
    {
        // refuses what has no Hugging Face form
        var json = HfConfig.Write(config, dtype);
        if (source is not null && File.Exists(Path.Combine(source, HfConfig.FileName)))
        {
            json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, HfConfig.FileName)))!.AsObject();
            json.Remove("dtype");
            json["torch_dtype"] = dtype;
        }
        Directory.CreateDirectory(folder);
        Runtime.ToolkitJson.Write(Path.Combine(folder, HfConfig.FileName), json);
    }

    /// <summary><c>generation_config.json</c> made from the shape: its BOS and EOS ids.</summary>
    public static void WriteGenerationConfig(string folder, IModelConfig config)
    {
        var settings = new JsonObject { ["_from_model_config"] = true };
        if (config is DecoderConfig { EosTokenIds.Length: > 0 } d)
            settings["eos_token_id"] = d.EosTokenIds.Length == 1
                ? d.EosTokenIds[0] : new JsonArray([.. d.EosTokenIds.Select(i => (JsonNode)i)]);
        if (config is DecoderConfig { BosTokenId: { } bos }) settings["bos_token_id"] = bos;
        Directory.CreateDirectory(folder);
        Runtime.ToolkitJson.Write(Path.Combine(folder, GenerationConfigFile), settings);
    }

    private const string GenerationConfigFile = "generation_config.json";

    private static ScalarType StoredType(string dtype) => HfConfig.DTypes.TryGetValue(dtype, out var type)
        ? type : throw new ArgumentOutOfRangeException(nameof(dtype), dtype, HfConfig.DTypeRule);
}
