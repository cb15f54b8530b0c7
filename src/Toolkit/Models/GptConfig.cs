namespace Toolkit.Models;

/// <summary>Shape of a decoder-only transformer (nanoGPT's GPTConfig).</summary>
/// <param name="VocabularySize">Tokens in the vocabulary (256 for the byte tokenizer).</param>
/// <param name="ContextLength">Longest sequence (positions).</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads; must divide <paramref name="Embedding"/>.</param>
/// <param name="Embedding">Model width.</param>
/// <param name="Experts">Experts of a mixture-of-experts feed-forward in every block; 0 for the dense 4x MLP.</param>
/// <param name="TopK">Experts each token is routed to (when <paramref name="Experts"/> &gt; 0).</param>
public sealed record GptConfig(int VocabularySize, int ContextLength, int Layers, int Heads, int Embedding,
    int Experts = 0, int TopK = 2)
    : IModelConfig
{
    /// <summary>GPT-2's tanh approximation of GELU (<c>gelu_new</c>) instead of the exact GELU the presets
    /// use.</summary>
    public bool GeluTanh { get; init; }

    /// <inheritdoc/>
    public string ModelType => "gpt2";

    /// <inheritdoc/>
    public int Hidden => Embedding;

    /// <inheritdoc/>
    public void Check() => Validate();

    /// <summary>About 36 k parameters: for tests.</summary>
    public static GptConfig Tiny { get; } = new(256, 32, 2, 2, 32);
    /// <summary>About 0.8 M parameters: notebooks and benchmarks on a laptop.</summary>
    public static GptConfig Small { get; } = new(256, 64, 4, 4, 128);
    /// <summary>About 10.8 M parameters.</summary>
    public static GptConfig Medium { get; } = new(256, 128, 6, 6, 384);
    /// <summary>About 85 M parameters (GPT-2 small's body with a byte vocabulary).</summary>
    public static GptConfig Base { get; } = new(256, 256, 12, 12, 768);

    /// <summary>The presets by name.</summary>
    public static IReadOnlyDictionary<string, GptConfig> Presets { get; } = new Dictionary<string,
        GptConfig>(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny"] = Tiny, ["small"] = Small, ["medium"] = Medium, ["base"] = Base,
    };

    /// <summary>Looks up a preset.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the presets.</exception>
    public static GptConfig Preset(string name) => Presets.TryGetValue(name, out var config)
        ? config
        : throw new ArgumentException($"Unknown model '{name}'. Valid: {string.Join(", ", Presets.Keys)}.",
            nameof(name));

    /// <summary>Parameter count: embeddings plus 12·C² + 13·C per block plus the final norm (the output layer is
    /// tied to the token embedding).</summary>
    public long ParameterCount => RootParameterCount + Layers * BlockParameterCount;

    /// <inheritdoc/>
    public long RootParameterCount
        => (long)VocabularySize * Embedding + (long)ContextLength * Embedding + 2L * Embedding;

    /// <summary>Parameters of one block: attention and its norms 4·C² + 8·C, each expert's MLP 8·C² + 5·C, the
    /// router E·C.</summary>
    public long BlockParameterCount => 4L * Embedding * Embedding + 8L * Embedding + Math.Max(1,
        Experts) * (8L * Embedding * Embedding + 5L * Embedding) + (long)Experts * Embedding;

    /// <summary>This shape with a mixture-of-experts feed-forward of <paramref name="experts"/> experts,
    /// <paramref name="topK"/> per token.</summary>
    public GptConfig WithExperts(int experts, int topK = 2) => (this with { Experts = experts,
        TopK = topK }).Validate();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid value.</summary>
    public GptConfig Validate()
    {
        if (VocabularySize < 2) throw new ArgumentOutOfRangeException(nameof(VocabularySize), VocabularySize,
            "must be at least 2");
        if (ContextLength < 1) throw new ArgumentOutOfRangeException(nameof(ContextLength), ContextLength,
            "must be at least 1");
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "must be at least 1");
        if (Heads < 1 || Embedding % Heads != 0) throw new ArgumentOutOfRangeException(nameof(Heads), Heads,
            $"must divide Embedding ({Embedding})");
        if (Experts < 0 || Experts == 1) throw new ArgumentOutOfRangeException(nameof(Experts), Experts,
            "must be 0 (dense) or at least 2");
        if (Experts > 0 && (TopK < 1 || TopK > Experts)) throw new ArgumentOutOfRangeException(nameof(TopK), TopK,
            $"must be in [1, {Experts}]");
        return this;
    }
}
