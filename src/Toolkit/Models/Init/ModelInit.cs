using Toolkit.Options;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>Options of <c>model init</c>: a random-weight Hugging Face folder of a supported family, to try every
/// command without a download.</summary>
public sealed record ModelInitOptions : Jobs.ICheckedOptions
{
    /// <summary>The family (<c>model_type</c>). Default llama.</summary>
    [Option("Family: llama, qwen2, mistral, mixtral or qwen2_moe.")]
    public string Arch { get; init; } = "llama";

    /// <summary>The folder to write. Required.</summary>
    [Option("The folder to write (created).")]
    public string? Out { get; init; }

    /// <summary>Decoder layers. Default 2.</summary>
    [Option("Decoder layers.")] public int Layers { get; init; } = 2;

    /// <summary>Hidden size. Default 64.</summary>
    [Option("Hidden size.")] public int Hidden { get; init; } = 64;

    /// <summary>Query heads. Default 4.</summary>
    [Option("Attention heads.")] public int Heads { get; init; } = 4;

    /// <summary>Key/value heads. Default 2 (grouped-query attention).</summary>
    [Option("Key/value heads (fewer than --heads: grouped-query attention).")] public int KvHeads { get; init; } = 2;

    /// <summary>Feed-forward width; 0 for about 8/3 of the hidden size, rounded up to 32. Default 0.</summary>
    [Option("Feed-forward width (0: about 8/3 of --hidden, a multiple of 32).")] public int Intermediate { get; init; }

    /// <summary>Routed experts of a mixtral or qwen2_moe model. Default 4.</summary>
    [Option("Routed experts per layer (mixtral, qwen2_moe).")] public int Experts { get; init; } = 4;

    /// <summary>Experts per token. Default 2.</summary>
    [Option("Experts each token is routed to (mixtral, qwen2_moe).")] public int TopK { get; init; } = 2;

    /// <summary>Vocabulary: 256 bytes, the merges learned from the embedded stories, 2 special tokens. Default
    /// 512.</summary>
    [Option("Vocabulary size: 256 byte tokens, BPE merges learned from the embedded stories, and 2 special tokens.")]
    public int Vocabulary { get; init; } = 512;

    /// <summary>Context length (<c>max_position_embeddings</c>). Default 256.</summary>
    [Option("Context length (max_position_embeddings).")] public int Context { get; init; } = 256;

    /// <summary>Output layer tied to the embedding. Default off for llama/mistral/mixtral, on for the Qwen2
    /// families.</summary>
    [Option("Tie the output layer to the token embedding (default: on for qwen2 and qwen2_moe, off otherwise).")]
    public bool? TieEmbeddings { get; init; }

    /// <summary>Llama 3's RoPE scaling (factor 8 over a quarter of the context). Default off.</summary>
    [Option("Llama 3's rope_scaling (llama3 type, factor 8, original context a quarter of --context).")]
    public bool Llama3Rope { get; init; }

    /// <summary>Standard deviation of the random matrices (transformers' initializer_range). Default 0.02.</summary>
    [Option("Standard deviation of the random weight matrices " +
        "(initializer_range).")] public double InitStd { get; init; } = 0.02;

    /// <summary>Stored dtype. Default float32.</summary>
    [Option("Stored dtype: float32, bfloat16 or float16.")] public string Dtype { get; init; } = "float32";

    /// <summary>Seed of the weights. Default 1.</summary>
    [Option("Seed of the weights.")] public int Seed { get; init; } = 1;

    /// <inheritdoc/>
    public void Check()
    {
        if (string.IsNullOrWhiteSpace(Out)) throw new ArgumentException("is required: the folder to write",
            nameof(Out));
        if (File.Exists(Out)) throw new ArgumentOutOfRangeException(nameof(Out), Out, "is a file; give a folder");
        if (!HfConfig.DTypes.ContainsKey(Dtype))
            throw new ArgumentOutOfRangeException(nameof(Dtype), Dtype, HfConfig.DTypeRule);
        if (!(InitStd > 0)) throw new ArgumentOutOfRangeException(nameof(InitStd), InitStd, "must be positive");
        _ = Config(bos: 256);
    }

    /// <summary>The shape these options describe, with BOS and EOS at <paramref name="bos"/> and the id after
    /// it.</summary>
    public DecoderConfig Config(int bos)
    {
        var family = Arch switch
        {
            "llama" => DecoderFamily.Llama, "qwen2" => DecoderFamily.Qwen2, "mistral" => DecoderFamily.Mistral,
            "mixtral" => DecoderFamily.Mixtral, "qwen2_moe" => DecoderFamily.Qwen2Moe,
            _ => throw new ArgumentOutOfRangeException(nameof(Arch), Arch,
                "must be llama, qwen2, mistral, mixtral or qwen2_moe"),
        };
        if (Vocabulary < 258) throw new ArgumentOutOfRangeException(nameof(Vocabulary), Vocabulary,
            "must be at least 258 (256 bytes and 2 special tokens)");
        if (Heads < 1 || Hidden % Heads != 0) throw new ArgumentOutOfRangeException(nameof(Heads), Heads,
            $"must divide --hidden ({Hidden})");
        var width = Intermediate > 0 ? Intermediate : (8 * Hidden / 3 + 31) / 32 * 32;
        var qwen = family is DecoderFamily.Qwen2 or DecoderFamily.Qwen2Moe;
        var moe = family is DecoderFamily.Mixtral or DecoderFamily.Qwen2Moe;
        var config = new DecoderConfig
        {
            Family = family, VocabularySize = Vocabulary, Hidden = Hidden, Intermediate = width, Layers = Layers,
                Heads = Heads,
            KvHeads = KvHeads, HeadDim = Hidden / Heads, ContextLength = Context, RmsNormEpsilon = 1e-5,
            RopeTheta = qwen ? 1_000_000 : 10_000, TieWordEmbeddings = TieEmbeddings ?? qwen, AttentionBias = qwen,
            RopeScaling = Llama3Rope ? new Llama3RopeScaling(8, 1, 4, Math.Max(1, Context / 4)) : null,
            Experts = moe ? Experts : 0, TopK = moe ? TopK : 0, NormalizeTopK = family == DecoderFamily.Mixtral,
            ExpertIntermediate = family == DecoderFamily.Qwen2Moe ? width / 2 : 0,
            SharedExpertIntermediate = family == DecoderFamily.Qwen2Moe ? width : 0,
            BosTokenId = bos, EosTokenIds = [bos + 1],
        };
        config.Check();
        return config;
    }
}

/// <summary>
/// Writes a random-weight Hugging Face folder (<c>toolkit model init</c>): <c>config.json</c>, the weights initialised
/// as transformers initialises a new model, and a byte-level BPE tokenizer whose merges are learned from the embedded
/// synthetic stories, with <c>&lt;|begin_of_text|&gt;</c> and <c>&lt;|end_of_text|&gt;</c> as BOS and EOS.
/// </summary>
public static class ModelInit
{
    /// <summary>The special tokens, in id order after the learned vocabulary.</summary>
    public static IReadOnlyList<string> SpecialTokens { get; } = ["<|begin_of_text|>", "<|end_of_text|>"];

    /// <summary>Writes the folder; returns its path.</summary>
    /// <exception cref="ArgumentException">An invalid option; the message names it.</exception>
    public static string Run(ModelInitOptions options)
    {
        options.Check();                                                            // before any work
        var folder = options.Out!;
        Runtime.TorchRuntime.EnsureInitialized();
        var (tokens, merges) = ByteLevelBpe.Train(Data.SyntheticCorpus.Embedded(),
            options.Vocabulary - 256 - SpecialTokens.Count);
        // the special tokens follow the learned ones
        var config = options.Config(bos: tokens.Count);
        Directory.CreateDirectory(folder);
        ByteLevelBpe.Write(folder, tokens, merges, SpecialTokens, SpecialTokens[0], SpecialTokens[1]);
        using var model = Decoder.Create(config, options.Seed, std: options.InitStd);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        HfExport.WriteConfig(folder, config, options.Dtype);
        HfExport.WriteGenerationConfig(folder, config);
        HfExport.WriteWeights(folder, config, name => parameters[name], options.Dtype);
        return folder;
    }
}
