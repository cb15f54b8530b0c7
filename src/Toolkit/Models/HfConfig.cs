using System.Text.Json;
using System.Text.Json.Nodes;

namespace Toolkit.Models;

/// <summary>
/// A Hugging Face <c>config.json</c>, read into the toolkit's model shapes and written back. Supported architectures:
/// <c>LlamaForCausalLM</c>, <c>Qwen2ForCausalLM</c>, <c>MistralForCausalLM</c>, <c>MixtralForCausalLM</c>,
/// <c>Qwen2MoeForCausalLM</c> (<see cref="DecoderConfig"/>) and <c>GPT2LMHeadModel</c> (the toolkit's GPT,
/// <see cref="GptConfig"/>). A setting the toolkit does not implement is refused by its key, never ignored.
/// </summary>
internal static class HfConfig
{
    /// <summary>The file name.</summary>
    public const string FileName = "config.json";

    /// <summary>Architectures the toolkit loads.</summary>
    public static IReadOnlyList<string> Supported { get; } =
        ["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM",
            "GPT2LMHeadModel"];

    /// <summary>The dtypes weights are stored in (<c>torch_dtype</c>), as TorchSharp names them.</summary>
    public static IReadOnlyDictionary<string, TorchSharp.torch.ScalarType> DTypes { get; } =
        new Dictionary<string, TorchSharp.torch.ScalarType>
        {
            ["float32"] = TorchSharp.torch.ScalarType.Float32,
            ["bfloat16"] = TorchSharp.torch.ScalarType.BFloat16,
            ["float16"] = TorchSharp.torch.ScalarType.Float16,
        };

    /// <summary>What a dtype outside <see cref="DTypes"/> is told.</summary>
    public const string DTypeRule = "must be float32, bfloat16 or float16";

    /// <summary>Reads <c>config.json</c> of a folder.</summary>
    /// <returns>The shape and the dtype its weights are stored in (<c>torch_dtype</c>, default float32).</returns>
    /// <exception cref="FileNotFoundException">The folder has no config.json.</exception>
    /// <exception cref="InvalidDataException">An unsupported architecture or setting, or a missing or malformed key;
    /// the message names the file and the key.</exception>
    public static (IModelConfig Config, string DType) Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException(
            $"{folder} is not a model folder: it has no {FileName}.", path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
        var keys = new Keys(path, json);
        var architecture = keys.Architecture();
        if (keys.Optional("quantization_config") is not null)
            throw keys.Refuse("quantization_config",
                "quantised checkpoints are not supported; give the unquantised weights");
        var dtype = keys.Text("torch_dtype") ?? keys.Text("dtype") ?? "float32";
        if (!DTypes.ContainsKey(dtype))
            throw keys.Refuse("torch_dtype", $"'{dtype}' is not float32, bfloat16 or float16");
        IModelConfig config = architecture == "GPT2LMHeadModel" ? Gpt2(keys) : Decoder(keys, architecture);
        try
        {
            config.Check();
        }
        catch (ArgumentOutOfRangeException e)
        {
            var key = KeyNames.GetValueOrDefault(e.ParamName ?? "") ?? e.ParamName;
            throw new InvalidDataException(
                $"{path}: key '{key}' ({e.ActualValue}) {e.Message.Split('\n')[0].Split(" (Parameter")[0]}.", e);
        }
        return (config, dtype);
    }

    /// <summary>The config.json key behind each property the shapes validate.</summary>
    private static readonly Dictionary<string, string> KeyNames = new(StringComparer.Ordinal)
    {
        [nameof(DecoderConfig.VocabularySize)] = "vocab_size", [nameof(DecoderConfig.Hidden)] = "hidden_size",
        [nameof(DecoderConfig.Intermediate)] = "intermediate_size",
            [nameof(DecoderConfig.Layers)] = "num_hidden_layers",
        [nameof(DecoderConfig.Heads)] = "num_attention_heads", [nameof(DecoderConfig.KvHeads)] = "num_key_value_heads",
        [nameof(DecoderConfig.HeadDim)] = "head_dim", [nameof(DecoderConfig.ContextLength)] = "max_position_embeddings",
        [nameof(DecoderConfig.RmsNormEpsilon)] = "rms_norm_eps", [nameof(DecoderConfig.RopeTheta)] = "rope_theta",
        [nameof(DecoderConfig.Experts)] = "num_experts", [nameof(DecoderConfig.TopK)] = "num_experts_per_tok",
        [nameof(DecoderConfig.RoutedWidth)] = "moe_intermediate_size",
            [nameof(DecoderConfig.EosTokenIds)] = "eos_token_id",
        [nameof(GptConfig.Embedding)] = "n_embd",
    };

    private static DecoderConfig Decoder(Keys keys, string architecture)
    {
        var family = architecture switch
        {
            "LlamaForCausalLM" => DecoderFamily.Llama, "Qwen2ForCausalLM" => DecoderFamily.Qwen2,
                "MistralForCausalLM" => DecoderFamily.Mistral,
            "MixtralForCausalLM" => DecoderFamily.Mixtral, _ => DecoderFamily.Qwen2Moe,
        };
        if ((keys.Text("hidden_act") ?? "silu") != "silu") throw keys.Refuse("hidden_act",
            "only silu (SwiGLU) is implemented");
        if (keys.Number("attention_dropout") is > 0) throw keys.Refuse("attention_dropout",
            "dropout is not implemented (training is deterministic)");
        if (keys.Flag("mlp_bias") == true) throw keys.Refuse("mlp_bias",
            "a bias on the feed-forward is not implemented");
        var qwen = family is DecoderFamily.Qwen2 or DecoderFamily.Qwen2Moe;
        if (!qwen && keys.Flag("attention_bias") == true) throw keys.Refuse("attention_bias",
            "a bias on the attention projections is implemented for the Qwen2 families only");
        if (keys.Number("router_jitter_noise") is > 0) throw keys.Refuse("router_jitter_noise",
            "router noise is not implemented");
        var heads = keys.Int("num_attention_heads");
        var hidden = keys.Int("hidden_size");
        var context = keys.Int("max_position_embeddings");
        if (qwen && keys.Flag("use_sliding_window") == true) throw keys.Refuse("use_sliding_window",
            "sliding-window attention is not implemented");
        if (!qwen && keys.Optional("sliding_window") is { } window && window.GetValueKind() == JsonValueKind.Number)
            // within the window, sliding-window attention is full causal attention
            context = Math.Min(context, window.GetValue<int>());
        var rope = keys.Optional("rope_parameters") as JsonObject;
        var config = new DecoderConfig
        {
            Family = family,
            VocabularySize = keys.Int("vocab_size"),
            Hidden = hidden,
            Intermediate = keys.IntOr("intermediate_size", 0),
            Layers = keys.Int("num_hidden_layers"),
            Heads = heads,
            KvHeads = keys.IntOr("num_key_value_heads", heads),
            HeadDim = keys.IntOr("head_dim", heads > 0 ? hidden / heads : 0),
            ContextLength = context,
            RmsNormEpsilon = keys.Number("rms_norm_eps") ?? 1e-6,
            RopeTheta = keys.Number("rope_theta") ?? (rope?["rope_theta"]?.GetValue<double>()) ?? 10_000,
            RopeScaling = RopeScaling(keys, rope),
            TieWordEmbeddings = keys.Flag("tie_word_embeddings") ?? false,
            AttentionBias = qwen,
            BosTokenId = keys.Ids("bos_token_id").Select(i => (long?)i).FirstOrDefault(),
            EosTokenIds = keys.Ids("eos_token_id"),
        };
        return family switch
        {
            DecoderFamily.Mixtral => config with { Experts = keys.Int("num_local_experts"),
                TopK = keys.Int("num_experts_per_tok"), NormalizeTopK = true },
            DecoderFamily.Qwen2Moe => Qwen2Moe(keys, config),
            _ => config,
        };
    }

    private static DecoderConfig Qwen2Moe(Keys keys, DecoderConfig config)
    {
        var step = keys.IntOr("decoder_sparse_step", 1);
        if (step < 1) throw keys.Refuse("decoder_sparse_step", "must be at least 1");
        var mlpOnly = keys.Optional("mlp_only_layers") is JsonArray list ? list.Select(v
            => v!.GetValue<int>()).ToHashSet() : [];
        return config with
        {
            Experts = keys.Int("num_experts"),
            TopK = keys.Int("num_experts_per_tok"),
            NormalizeTopK = keys.Flag("norm_topk_prob") ?? false,
            ExpertIntermediate = keys.Int("moe_intermediate_size"),
            SharedExpertIntermediate = keys.IntOr("shared_expert_intermediate_size", 0),
            DenseLayers = [.. Enumerable.Range(0, config.Layers)
                .Where(l => mlpOnly.Contains(l) || (l + 1) % step != 0)],
        };
    }

    private static Llama3RopeScaling? RopeScaling(Keys keys, JsonObject? parameters)
    {
        var node = keys.Optional("rope_scaling") as JsonObject ?? parameters;
        if (node is null) return null;
        var type = (node["rope_type"] ?? node["type"])?.GetValue<string>() ?? "default";
        if (type == "default") return null;
        if (type != "llama3") throw keys.Refuse("rope_scaling",
            $"rope type '{type}' is not implemented (default and llama3 are)");
        double Get(string key) => node[key]?.GetValue<double>() ?? throw keys.Refuse("rope_scaling",
            $"llama3 scaling needs '{key}'");
        return new Llama3RopeScaling(Get("factor"), Get("low_freq_factor"), Get("high_freq_factor"),
            (int)Get("original_max_position_embeddings"));
    }

    private static GptConfig Gpt2(Keys keys)
    {
        var embedding = keys.Int("n_embd");
        if (keys.Optional("n_inner") is { } inner && inner.GetValueKind() == JsonValueKind.Number
            && inner.GetValue<int>() != 4 * embedding)
            throw keys.Refuse("n_inner", $"only the 4x MLP ({4 * embedding}) is implemented");
        var activation = keys.Text("activation_function") ?? "gelu_new";
        if (activation is not ("gelu" or "gelu_new")) throw keys.Refuse("activation_function",
            $"'{activation}' is not gelu or gelu_new");
        if (keys.Number("layer_norm_epsilon") is { } eps
            && Math.Abs(eps - 1e-5) > 1e-12) throw keys.Refuse("layer_norm_epsilon", "only 1e-5 is implemented");
        if (keys.Flag("scale_attn_by_inverse_layer_idx") == true) throw keys.Refuse("scale_attn_by_inverse_layer_idx",
            "is not implemented");
        if (keys.Flag("add_cross_attention") == true) throw keys.Refuse("add_cross_attention",
            "a decoder-only model has no cross-attention");
        if (keys.Flag("tie_word_embeddings") == false) throw keys.Refuse("tie_word_embeddings",
            "the GPT's output layer is its token embedding");
        return new GptConfig(keys.Int("vocab_size"), keys.Int("n_positions"), keys.Int("n_layer"), keys.Int("n_head"),
            embedding)
            { GeluTanh = activation == "gelu_new" };
    }

    /// <summary>A model's <c>config.json</c>, as transformers writes it for the architecture.</summary>
    /// <exception cref="ArgumentException">A mixture-of-experts GPT, which has no Hugging Face
    /// architecture.</exception>
    public static JsonObject Write(IModelConfig config, string dtype) => config switch
    {
        DecoderConfig d => WriteDecoder(d, dtype),
        GptConfig { Experts: > 0 } => throw new ArgumentException(
            "a mixture-of-experts GPT has no Hugging Face architecture; train a mixtral or qwen2_moe model to export " +
                "experts", nameof(config)),
        GptConfig g => new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"), ["model_type"] = "gpt2",
                ["vocab_size"] = g.VocabularySize,
            ["n_positions"] = g.ContextLength, ["n_embd"] = g.Embedding, ["n_layer"] = g.Layers, ["n_head"] = g.Heads,
                ["n_inner"] = null,
            ["activation_function"] = g.GeluTanh ? "gelu_new" : "gelu", ["layer_norm_epsilon"] = 1e-5,
                ["tie_word_embeddings"] = true,
            ["resid_pdrop"] = 0.0, ["embd_pdrop"] = 0.0, ["attn_pdrop"] = 0.0, ["torch_dtype"] = dtype,
        },
        _ => throw new ArgumentException($"unknown model config {config.GetType().Name}", nameof(config)),
    };

    private static JsonObject WriteDecoder(DecoderConfig d, string dtype)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(d.Architecture), ["model_type"] = d.ModelType,
                ["vocab_size"] = d.VocabularySize,
            ["hidden_size"] = d.Hidden, ["intermediate_size"] = d.Intermediate, ["num_hidden_layers"] = d.Layers,
            ["num_attention_heads"] = d.Heads, ["num_key_value_heads"] = d.KvHeads, ["head_dim"] = d.HeadDim,
            ["max_position_embeddings"] = d.ContextLength, ["rms_norm_eps"] = d.RmsNormEpsilon,
                ["rope_theta"] = d.RopeTheta,
            ["hidden_act"] = "silu", ["tie_word_embeddings"] = d.TieWordEmbeddings, ["attention_dropout"] = 0.0,
                ["torch_dtype"] = dtype,
        };
        if (d.BosTokenId is { } bos) json["bos_token_id"] = bos;
        if (d.EosTokenIds.Length > 0) json["eos_token_id"] = d.EosTokenIds.Length == 1
            ? d.EosTokenIds[0] : new JsonArray([.. d.EosTokenIds.Select(i => (JsonNode)i)]);
        if (d.RopeScaling is { } s)
            json["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFrequencyFactor,
                ["high_freq_factor"] = s.HighFrequencyFactor, ["original_max_position_embeddings"] = s.OriginalContext,
            };
        if (d.Family is DecoderFamily.Mistral or DecoderFamily.Mixtral) json["sliding_window"] = null;
        if (d.Family is DecoderFamily.Qwen2 or DecoderFamily.Qwen2Moe) json["use_sliding_window"] = false;
        if (d.Family == DecoderFamily.Mixtral)
        {
            json["num_local_experts"] = d.Experts;
            json["num_experts_per_tok"] = d.TopK;
        }
        if (d.Family == DecoderFamily.Qwen2Moe)
        {
            json["num_experts"] = d.Experts;
            json["num_experts_per_tok"] = d.TopK;
            json["norm_topk_prob"] = d.NormalizeTopK;
            json["moe_intermediate_size"] = d.ExpertIntermediate;
            json["shared_expert_intermediate_size"] = d.SharedExpertIntermediate;
            json["decoder_sparse_step"] = 1;
            json["mlp_only_layers"] = new JsonArray([.. d.DenseLayers.Select(l => (JsonNode)l)]);
        }
        return json;
    }

    /// <summary>Typed access to a config's keys, with errors that name the file and the key.</summary>
    private sealed class Keys(string path, JsonObject json)
    {
        public string Architecture()
        {
            var names = json["architectures"] is JsonArray list ? list.Select(n => n?.ToString() ?? "").ToList() : [];
            if (names.Count == 0) throw new InvalidDataException(
                $"{path}: key 'architectures' is missing; supported: {string.Join(", ", Supported)}.");
            var supported = string.Join(", ", Supported);
            return names.FirstOrDefault(Supported.Contains) ?? throw new InvalidDataException(
                $"{path}: architectures '{string.Join(", ", names)}' is not supported; supported: {supported}.");
        }

        public JsonNode? Optional(string key) => json[key];

        public string? Text(string key)
            => json[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

        public double? Number(string key)
            => json[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;

        public bool? Flag(string key)
            => json[key] is JsonValue v
                && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;

        public int Int(string key)
        {
            if (json[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
                && v.TryGetValue<int>(out var i)) return i;
            var found = json[key] is null ? "missing" : $"not an integer ({json[key]!.ToJsonString()})";
            throw new InvalidDataException($"{path}: key '{key}' is {found}.");
        }

        public int IntOr(string key, int fallback) =>
            json[key] is null || json[key]!.GetValueKind() == JsonValueKind.Null ? fallback : Int(key);

        public long[] Ids(string key) => json[key] switch
        {
            JsonArray list => [.. list.Select(n => n!.GetValue<long>())],
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => [v.GetValue<long>()],
            _ => [],
        };

        public InvalidDataException Refuse(string key, string why) => new($"{path}: key '{key}': {why}.");
    }
}
