using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// Writes a model as a Hugging Face folder that transformers, vLLM and this toolkit load: <c>config.json</c>,
/// <c>generation_config.json</c>, the tokenizer (the source folder's files, or the byte tokenizer of a GPT preset as a
/// 256-token byte-level BPE) and the weights under the checkpoint's own names, one tensor at a time.
/// </summary>
public static class HfExport
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
        string dtype = "float32",
        string? tokenizerSource = null, long maxShardBytes = 4L << 30)
    {
        var type = dtype switch
        {
            "float32" => ScalarType.Float32, "bfloat16" => ScalarType.BFloat16, "float16" => ScalarType.Float16,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "must be float32, bfloat16 or float16"),
        };
        WriteDescription(folder, config, dtype, tokenizerSource);
        var layout = ModelLayout.Of(config)
            .Select(p => (Name: p.Name, Stored: HfNames.Checkpoint(config, p.Name),
                Transposed: HfNames.IsTransposed(config, p.Name), p.Shape))
            .ToList();
        var stored = layout.Select(p => (p.Stored, type, p.Transposed ? new[] { p.Shape[1],
            p.Shape[0] } : p.Shape)).ToList();
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
    /// <c>generation_config.json</c>.
    /// </summary>
    /// <exception cref="ArgumentException">A mixture-of-experts GPT, which has no Hugging Face
    /// architecture.</exception>
    public static void WriteDescription(string folder, IModelConfig config, string dtype, string? source)
    {
        // refuses what has no Hugging Face form
        var json = HfConfig.Write(config, dtype);
        if (source is not null && File.Exists(Path.Combine(source, HfConfig.FileName)))
        {
            // its keys as they were
            json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, HfConfig.FileName)))!.AsObject();
            json.Remove("dtype");
            json["torch_dtype"] = dtype;
        }
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, HfConfig.FileName),
            json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteTokenizer(folder, config, source);
    }

    private static void WriteTokenizer(string folder, IModelConfig config, string? source)
    {
        if (source is not null && Path.GetFullPath(source) != Path.GetFullPath(folder))
        {
            foreach (var name in TokenizerFiles)
                if (File.Exists(Path.Combine(source, name))) File.Copy(Path.Combine(source, name), Path.Combine(folder,
                    name), overwrite: true);
        }
        else if (source is null)
        {
            ByteLevelBpe.Write(folder, [.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b })], [], [], bos: null,
                eos: null);
        }
        var generation = Path.Combine(folder, "generation_config.json");
        if (File.Exists(generation)) return;
        var settings = new JsonObject { ["_from_model_config"] = true };
        if (config is DecoderConfig { EosTokenIds.Length: > 0 } d)
            settings["eos_token_id"] = d.EosTokenIds.Length == 1
                ? d.EosTokenIds[0] : new JsonArray([.. d.EosTokenIds.Select(i => (JsonNode)i)]);
        if (config is DecoderConfig { BosTokenId: { } bos }) settings["bos_token_id"] = bos;
        File.WriteAllText(generation, settings.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
