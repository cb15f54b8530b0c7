using System.Text.Json.Nodes;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Support;
using static TorchSharp.torch;

namespace Toolkit.Tests.Models;

/// <summary>
/// Hugging Face folders in and out: an exported model reads back bit-exactly (single file, sharded with an index, and
/// GPT-2's transposed layout), bf16 weights load, and every kind of bad folder is refused with a message that names the
/// file and the key.
/// </summary>
public sealed class HfFolderTests : IDisposable
{
    private readonly TemporaryFolder _root = new("hf-folder-");

    public HfFolderTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    [Theory]
    [InlineData("llama", long.MaxValue)]
    [InlineData("mixtral", 20_000L)]            // shards of at most 20 kB: an index and several files
    public void Export_ThenLoad_IsBitExact(string arch, long maxShardBytes)
    {
        using var source = HfModel.Open(TinyModels.Write(_root.Path, arch));
        using var model = source.Load();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var copy = Path.Combine(_root.Path, "copy");
        HfExport.Write(copy, source.Config, name => parameters[name], tokenizerSource: source.Folder,
            maxShardBytes: maxShardBytes);
        Assert.Equal(maxShardBytes < long.MaxValue, File.Exists(Path.Combine(copy, HfWeights.IndexFile)));
        using var again = HfModel.Open(copy);
        Assert.Equal(source.Config, again.Config);
        using var reloaded = again.Load();
        foreach (var (name, p) in reloaded.named_parameters()) Assert.True(Same(p, parameters[name]), name);
        using var tokens = tensor(source.Tokenizer.EncodeText(TinyModels.Sentence)).unsqueeze(0);
        using var _ = no_grad();
        Assert.True(Same(model.call(tokens), reloaded.call(tokens)));
        Assert.Equal(source.Tokenizer.Encode(TinyModels.Sentence), again.Tokenizer.Encode(TinyModels.Sentence));
    }

    [Fact]
    public void GptPreset_ExportsAsGpt2_AndLoadsBack()
    {
        using var gpt = Gpt.Create(GptConfig.Tiny, seed: 5);
        var parameters = gpt.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var folder = Path.Combine(_root.Path, "gpt");
        HfExport.Write(folder, gpt.Config, name => parameters[name]);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        Assert.Equal("GPT2LMHeadModel", config["architectures"]![0]!.GetValue<string>());
        using var hf = HfModel.Open(folder);
        // Conv1D: [in, out]
        Assert.Equal([3, 32, 96],
            new[] { 3 }.Concat(hf.Weights.Entry("transformer.h.0.attn.c_attn.weight").Entry.Shape.Select(d => (int)d)));
        using var loaded = hf.Load();
        using var tokens = tensor(hf.Tokenizer.EncodeText("a byte text")).unsqueeze(0);
        // the byte tokenizer, as BPE
        Assert.Equal("a byte text".Select(c => (long)c), hf.Tokenizer.EncodeText("a byte text"));
        using var _ = no_grad();
        Assert.True(Same(gpt.call(tokens), loaded.call(tokens)));
    }

    [Theory]
    [InlineData("bfloat16", "BF16", ScalarType.BFloat16)]
    [InlineData("float16", "F16", ScalarType.Float16)]
    public void HalfWeights_LoadAsTheirValues(string dtype, string stored16, ScalarType type)
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, "qwen2", o => o with { Dtype = dtype }));
        Assert.Equal(dtype, hf.DType);
        var (_, entry) = hf.Weights.Entry("model.layers.0.self_attn.q_proj.weight");
        Assert.Equal(stored16, entry.DType);
        using var model = hf.Load();
        using var stored = hf.Weights.Read("model.layers.0.self_attn.q_proj.weight", type);
        var loaded = model.named_parameters().Single(p => p.name == "model.layers.0.self_attn.q_proj.weight").parameter;
        Assert.Equal(ScalarType.Float32, loaded.dtype);
        Assert.True(Same(loaded, stored.to(ScalarType.Float32)));
    }

    /// <summary>The keys of published config.json files (as on the Hub) and their published parameter counts.</summary>
    public static TheoryData<string, long, string> PublishedConfigs => new()
    {
        {
            "Llama-2-7b", 6_738_415_616L,
            """
            {"architectures": ["LlamaForCausalLM"], "vocab_size": 32000, "hidden_size": 4096,
             "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
             "hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
             "torch_dtype": "float16", "pretraining_tp": 1, "rope_scaling": null}
            """
        },
        {
            "Mixtral-8x7B", 46_702_792_704L,
            """
            {"architectures": ["MixtralForCausalLM"], "vocab_size": 32000, "hidden_size": 4096,
             "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "hidden_act": "silu",
             "sliding_window": null, "num_local_experts": 8, "num_experts_per_tok": 2, "router_aux_loss_coef": 0.02,
             "output_router_logits": false, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
             "torch_dtype": "bfloat16"}
            """
        },
        {
            "Qwen2-0.5B", 494_032_768L,
            """
            {"architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
             "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
             "max_position_embeddings": 131072, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "hidden_act": "silu",
             "use_sliding_window": false, "sliding_window": 131072, "max_window_layers": 24,
             "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151643, "torch_dtype": "bfloat16",
             "attention_dropout": 0.0}
            """
        },
    };

    /// <summary>
    /// Published configs give the published parameter counts, and a placeholder model of that size (Llama-2-7B: nothing
    /// allocated) has exactly those parameters.
    /// </summary>
    [Theory]
    [MemberData(nameof(PublishedConfigs))]
    public void PublishedConfigs_GiveThePublishedParameterCounts(string name, long parameters, string json)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_root.Path, name)).FullName;
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        var (config, _) = HfConfig.Read(folder);
        Assert.Equal(parameters, config.ParameterCount);
        // placeholders: shapes only
        if (parameters < 10_000_000_000) Assert.Equal(parameters, ModelLayout.Count(config));
    }

    /// <summary><c>model init</c> into a folder it wrote before replaces the model: config, generation config and
    /// weights all describe the new one.</summary>
    [Fact]
    public void ModelInit_AgainIntoTheSameFolder_WritesTheNewModel()
    {
        var folder = Path.Combine(_root.Path, "again");
        ModelInit.Run(new ModelInitOptions { Arch = "llama", Out = folder, Hidden = 64 });
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"eos_token_id": 7}""");
        ModelInit.Run(new ModelInitOptions { Arch = "qwen2", Out = folder, Hidden = 128, Vocabulary = 400 });
        using var hf = HfModel.Open(folder);
        var config = Assert.IsType<DecoderConfig>(hf.Config);
        Assert.Equal((128, 400, "qwen2"), (config.Hidden, config.VocabularySize, config.ModelType));
        Assert.Equal(config.EosTokenIds, hf.Tokenizer.EosIds);            // not the stale generation config's 7
        using var model = hf.Load();
        Assert.Equal(ModelLayout.Count(config), model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void MistralSlidingWindow_CapsTheContext()
    {
        var path = TinyModels.Write(_root.Path, "mistral");
        Edit(path, "config.json", c => c["sliding_window"] = 32);
        using var hf = HfModel.Open(path);
        Assert.Equal(32, hf.Config.ContextLength);
    }

    public static TheoryData<string, string, string> BadFolders => new()
    {
        { "architectures", "FalconForCausalLM", "LlamaForCausalLM" },
        { "use_sliding_window", "use_sliding_window", "sliding-window" },
        { "rope_scaling", "'rope_scaling'", "yarn" },
        { "hidden_act", "'hidden_act'", "silu" },
        { "quantization_config", "quantization_config", "unquantised" },
        { "vocab_size", "'vocab_size' is 290", "the tokenizer has 300 tokens" },
        { "shape", "'model.layers.0.self_attn.k_proj.weight' has shape [32, 64]", "implies [16, 64]" },
        { "missing tensor", "no tensor 'model.norm.weight'", "config.json" },
        { "extra tensor", "model.layers.0.self_attn.q_norm.weight", "does not have" },
        { "dtype", "dtype I8", "F32, BF16, F16" },
        { "no config", "has no config.json", "not a model folder" },
    };

    [Theory]
    [MemberData(nameof(BadFolders))]
    public void BadFolder_IsRefused_NamingTheFileAndTheKey(string defect, string expected, string alsoExpected)
    {
        var path = TinyModels.Write(_root.Path, defect == "use_sliding_window" ? "qwen2" : "llama");
        switch (defect)
        {
            case "architectures": Edit(path, "config.json",
                c => c["architectures"] = new JsonArray("FalconForCausalLM")); break;
            case "use_sliding_window": Edit(path, "config.json", c => c["use_sliding_window"] = true); break;
            case "rope_scaling": Edit(path, "config.json",
                c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 }); break;
            case "hidden_act": Edit(path, "config.json", c => c["hidden_act"] = "gelu"); break;
            case "quantization_config": Edit(path, "config.json",
                c => c["quantization_config"] = new JsonObject { ["quant_method"] = "gptq" }); break;
            case "vocab_size": Edit(path, "config.json", c => (c["vocab_size"], c["bos_token_id"],
                c["eos_token_id"]) = (290, 1, 2)); break;
            case "shape": Edit(path, "config.json", c => c["num_key_value_heads"] = 1); break;
            case "missing tensor": RewriteWeights(path, (name, t) => name == "model.norm.weight" ? null : t); break;
            case "extra tensor": RewriteWeights(path, (name, t) => t, ("model.layers.0.self_attn.q_norm.weight",
                ones(16))); break;
            case "dtype": RewriteWeights(path, (name,
                t) => name == "model.norm.weight" ? t.to(ScalarType.Int8) : t); break;
            case "no config": File.Delete(Path.Combine(path, "config.json")); break;
        }
        var error = Assert.ThrowsAny<Exception>(() => HfModel.Open(path).Dispose());
        Assert.True(error is InvalidDataException or FileNotFoundException,
            error.GetType().Name + ": " + error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(alsoExpected, error.Message);
        Assert.Contains(path, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    /// <summary>Same shape and bit-identical values.</summary>
    private static bool Same(Tensor a,
        Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    private static void Edit(string folder, string file, Action<JsonObject> change)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, file)))!.AsObject();
        change(json);
        File.WriteAllText(Path.Combine(folder, file), json.ToJsonString());
    }

    /// <summary>Rewrites model.safetensors raw (no toolkit checks), changing or dropping tensors and adding
    /// some.</summary>
    private static void RewriteWeights(string folder, Func<string, Tensor, Tensor?> change, params (string,
        Tensor)[] extra)
    {
        var path = Path.Combine(folder, HfWeights.SingleFile);
        List<(string Name, Tensor Value)> tensors;
        using (var file = SafetensorsFile.Open(path))
            tensors = [.. file.Tensors.Keys.Select(n => (n, change(n,
                file.Read(n)))).Where(e => e.Item2 is not null).Select(e => (e.n, e.Item2!)), .. extra];
        File.Delete(path);
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, value) in tensors)
        {
            var size = value.numel() * value.element_size();
            var dtype = value.dtype switch { ScalarType.Int8 => "I8", ScalarType.Float32 => "F32", _ => "BF16" };
            header[name] = new JsonObject { ["dtype"] = dtype,
                ["shape"] = new JsonArray([.. value.shape.Select(d => (JsonNode)d)]),
                    ["data_offsets"] = new JsonArray(offset, offset + size) };
            offset += size;
        }
        using var stream = File.Create(path);
        var text = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        stream.Write(BitConverter.GetBytes((long)text.Length));
        stream.Write(text);
        foreach (var (_, value) in tensors) stream.Write(value.contiguous().bytes);
    }
}
