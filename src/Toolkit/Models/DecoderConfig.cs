using System.Text.Json.Serialization;

namespace Toolkit.Models;

/// <summary>The Hugging Face decoder families the toolkit runs, by their <c>model_type</c>.</summary>
public enum DecoderFamily
{
    /// <summary><c>LlamaForCausalLM</c> (Llama 2 and 3).</summary>
    [JsonStringEnumMemberName("llama")] Llama,
    /// <summary><c>Qwen2ForCausalLM</c>: Llama's layout with a bias on q, k and v.</summary>
    [JsonStringEnumMemberName("qwen2")] Qwen2,
    /// <summary><c>MistralForCausalLM</c>: Llama's layout (its sliding window caps the context).</summary>
    [JsonStringEnumMemberName("mistral")] Mistral,
    /// <summary><c>MixtralForCausalLM</c>: every feed-forward a sparse mixture of experts (softmax, top-k,
    /// renormalised).</summary>
    [JsonStringEnumMemberName("mixtral")] Mixtral,
    /// <summary><c>Qwen2MoeForCausalLM</c>: routed experts plus a gated shared expert, q/k/v bias.</summary>
    [JsonStringEnumMemberName("qwen2_moe")] Qwen2Moe,
}

/// <summary>Llama 3's <c>rope_scaling</c> (<c>rope_type: llama3</c>): long wavelengths slowed by a factor, short ones
/// kept, a smooth ramp between.</summary>
/// <param name="Factor">Slow-down of the low frequencies (8 in Llama 3.1).</param>
/// <param name="LowFrequencyFactor">Wavelengths above original/low are scaled (1).</param>
/// <param name="HighFrequencyFactor">Wavelengths below original/high are kept (4).</param>
/// <param name="OriginalContext">The context the model was pre-trained with (8192).</param>
public sealed record Llama3RopeScaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor,
    int OriginalContext);

/// <summary>
/// The shape of a Hugging Face decoder-only transformer of the Llama lineage (as its <c>config.json</c> gives it):
/// pre-norm RMSNorm blocks, grouped-query attention with rotary positions, a SwiGLU feed-forward or a sparse mixture of
/// SwiGLU experts. <see cref="HfConfig"/> reads and writes it.
/// </summary>
public sealed record DecoderConfig : IModelConfig
{
    /// <summary>The family.</summary>
    public DecoderFamily Family { get; init; } = DecoderFamily.Llama;
    /// <inheritdoc/>
    public int VocabularySize { get; init; }
    /// <inheritdoc/>
    public int Hidden { get; init; }
    /// <summary>Width of the dense feed-forward (<c>intermediate_size</c>).</summary>
    public int Intermediate { get; init; }
    /// <inheritdoc/>
    public int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public int KvHeads { get; init; }
    /// <summary>Width of one head (<c>head_dim</c>, default hidden / heads).</summary>
    public int HeadDim { get; init; }
    /// <inheritdoc/>
    public int ContextLength { get; init; }
    /// <summary>RMSNorm's ε.</summary>
    public double RmsNormEpsilon { get; init; } = 1e-6;
    /// <summary>RoPE base θ.</summary>
    public double RopeTheta { get; init; } = 10_000;
    /// <summary>Llama 3's frequency scaling, or null.</summary>
    public Llama3RopeScaling? RopeScaling { get; init; }
    /// <summary>True when the output layer is the token embedding (<c>tie_word_embeddings</c>).</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>A bias on the q, k and v projections (the Qwen2 families).</summary>
    public bool AttentionBias { get; init; }
    /// <inheritdoc/>
    public int Experts { get; init; }
    /// <summary>Experts each token is routed to.</summary>
    public int TopK { get; init; }
    /// <summary>Whether the top-k routing weights are renormalised to sum to 1 (Mixtral always; Qwen2-MoE's
    /// <c>norm_topk_prob</c>).</summary>
    public bool NormalizeTopK { get; init; } = true;
    /// <summary>Width of one routed expert (<c>moe_intermediate_size</c>; Mixtral's experts use
    /// <see cref="Intermediate"/>).</summary>
    public int ExpertIntermediate { get; init; }
    /// <summary>Width of Qwen2-MoE's shared expert; 0 for none.</summary>
    public int SharedExpertIntermediate { get; init; }
    /// <summary>Qwen2-MoE: layers with a dense feed-forward instead of experts (<c>mlp_only_layers</c> and
    /// <c>decoder_sparse_step</c> resolved).</summary>
    public int[] DenseLayers { get; init; } = [];
    /// <summary>Token id that starts a text, or null.</summary>
    public long? BosTokenId { get; init; }
    /// <summary>Token ids that end a generation (<c>eos_token_id</c>, one or several).</summary>
    public long[] EosTokenIds { get; init; } = [];

    /// <inheritdoc/>
    public string ModelType => Family switch
    {
        DecoderFamily.Llama => "llama", DecoderFamily.Qwen2 => "qwen2", DecoderFamily.Mistral => "mistral",
        DecoderFamily.Mixtral => "mixtral", _ => "qwen2_moe",
    };

    /// <summary>The Hugging Face class name (<c>architectures[0]</c>).</summary>
    public string Architecture => Family switch
    {
        DecoderFamily.Llama => "LlamaForCausalLM", DecoderFamily.Qwen2 => "Qwen2ForCausalLM",
            DecoderFamily.Mistral => "MistralForCausalLM",
        DecoderFamily.Mixtral => "MixtralForCausalLM", _ => "Qwen2MoeForCausalLM",
    };

    /// <summary>Whether layer <paramref name="layer"/> has routed experts.</summary>
    public bool IsSparse(int layer) => Experts > 0 && !DenseLayers.Contains(layer);

    /// <summary>Width of a routed expert.</summary>
    public int RoutedWidth => Family == DecoderFamily.Mixtral ? Intermediate : ExpertIntermediate;

    /// <inheritdoc/>
    public long RootParameterCount => (long)VocabularySize * Hidden * (TieWordEmbeddings ? 1 : 2) + Hidden;

    /// <inheritdoc/>
    public long ParameterCount
    {
        get
        {
            long h = Hidden, q = (long)Heads * HeadDim, kv = (long)KvHeads * HeadDim;
            var attention = h * q + 2 * h * kv + q * h + (AttentionBias ? q + 2 * kv : 0);
            var total = RootParameterCount;
            for (var l = 0; l < Layers; l++)
            {
                var feedForward = IsSparse(l)
                    ? Experts * h + Experts * 3 * h * RoutedWidth
                        + (SharedExpertIntermediate > 0 ? 3 * h * SharedExpertIntermediate + h : 0)
                    : 3 * h * Intermediate;
                total += 2 * h + attention + feedForward;
            }
            return total;
        }
    }

    /// <inheritdoc/>
    public void Check()
    {
        static void Positive(string name, long value)
        {
            if (value < 1) throw new ArgumentOutOfRangeException(name, value, "must be at least 1");
        }
        Positive(nameof(VocabularySize), VocabularySize);
        Positive(nameof(Hidden), Hidden);
        Positive(nameof(Layers), Layers);
        Positive(nameof(Heads), Heads);
        Positive(nameof(KvHeads), KvHeads);
        Positive(nameof(HeadDim), HeadDim);
        Positive(nameof(ContextLength), ContextLength);
        if (HeadDim % 2 != 0) throw new ArgumentOutOfRangeException(nameof(HeadDim), HeadDim,
            "must be even (rotary positions rotate pairs)");
        if (Heads % KvHeads != 0) throw new ArgumentOutOfRangeException(nameof(KvHeads), KvHeads,
            $"must divide the heads ({Heads})");
        if (Experts == 0 || DenseLayers.Length > 0) Positive(nameof(Intermediate), Intermediate);
        if (Experts is < 0 or 1) throw new ArgumentOutOfRangeException(nameof(Experts), Experts,
            "must be 0 (dense) or at least 2");
        if (Experts > 0 && (TopK < 1 || TopK > Experts)) throw new ArgumentOutOfRangeException(nameof(TopK), TopK,
            $"must be in [1, {Experts}]");
        if (Experts > 0) Positive(nameof(RoutedWidth), RoutedWidth);
        if (!(RmsNormEpsilon > 0)) throw new ArgumentOutOfRangeException(nameof(RmsNormEpsilon), RmsNormEpsilon,
            "must be positive");
        if (!(RopeTheta > 0)) throw new ArgumentOutOfRangeException(nameof(RopeTheta), RopeTheta, "must be positive");
        foreach (var id in EosTokenIds.Concat(BosTokenId is { } b ? [b] : []))
            if (id < 0 || id >= VocabularySize) throw new ArgumentOutOfRangeException(nameof(EosTokenIds), id,
                $"is not a token id (vocabulary {VocabularySize})");
    }

    /// <summary>One line: family, size and shape.</summary>
    public override string ToString() =>
        $"{ModelType} ({ParameterCount / 1e6:F1} M parameters: {Layers} layers, hidden {Hidden}, {Heads} heads " +
            $"/ {KvHeads} kv, " +
        $"vocabulary {VocabularySize}{(Experts > 0 ? $", {Experts} experts top-{TopK}" : "")})";

    /// <inheritdoc/>
    public bool Equals(DecoderConfig? other) => other is not null && ToKey() == other.ToKey();

    /// <inheritdoc/>
    public override int GetHashCode() => ToKey().GetHashCode(StringComparison.Ordinal);

    private string ToKey() => string.Join('|', Family, VocabularySize, Hidden, Intermediate, Layers, Heads, KvHeads,
        HeadDim, ContextLength,
        RmsNormEpsilon, RopeTheta, RopeScaling, TieWordEmbeddings, AttentionBias, Experts, TopK, NormalizeTopK,
            ExpertIntermediate,
        SharedExpertIntermediate, string.Join(',', DenseLayers), BosTokenId, string.Join(',', EosTokenIds));
}
