using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// The Hugging Face decoder families of the Llama lineage in one module (<see cref="DecoderFamily"/>), after
/// transformers' <c>modeling_llama.py</c>: token embedding, pre-norm layers of grouped-query attention with rotary
/// positions (<see cref="Rope"/>) and a SwiGLU feed-forward or a sparse mixture of experts (<see cref="SparseMoe"/>), a
/// final RMSNorm and the output layer (or the tied embedding). Parameter names are the checkpoint's own
/// (<c>model.layers.0.self_attn.q_proj.weight</c>), so a folder's tensors load by name. No dropout.
/// </summary>
internal sealed class Decoder : CausalLanguageModel
{
    private readonly Body model;
    private readonly Dense? lm_head;

    private Decoder(DecoderConfig config, ParameterFactory make) : base(nameof(Decoder))
    {
        config.Check();
        Config = config;
        model = new Body(config, make);
        register_module(nameof(model), model);
        if (config.TieWordEmbeddings) return;
        lm_head = new Dense(config.Hidden, config.VocabularySize, false, make);
        register_module(nameof(lm_head), lm_head);
    }

    /// <summary>A new model initialised as transformers initialises one (N(0, σ) matrices, unit norms, zero biases)
    /// from <paramref name="seed"/>.</summary>
    /// <param name="config">The shape.</param>
    /// <param name="seed">Seed of the weights (a generator of its own: no global state).</param>
    /// <param name="dtype">The parameters' dtype.</param>
    /// <param name="std">σ of the matrices (transformers' initializer_range, 0.02).</param>
    public static Decoder Create(DecoderConfig config, long seed, ScalarType dtype = ScalarType.Float32,
        double std = 0.02)
    {
        using var generator = new Generator((ulong)seed);
        return new Decoder(config, new ParameterFactory(dtype, generator, std));
    }

    /// <summary>A model whose parameters only carry their shapes (nothing allocated): for a loader or a sharded trainer
    /// to fill.</summary>
    public static Decoder Placeholder(DecoderConfig config, ScalarType dtype = ScalarType.Float32) =>
        new(config, ParameterFactory.Placeholders(dtype));

    /// <summary>The model's shape.</summary>
    public DecoderConfig Config { get; }

    /// <inheritdoc/>
    public override IModelConfig Shape => Config;

    /// <inheritdoc/>
    public override IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks => [.. model.Layers];

    /// <inheritdoc/>
    public override string? TiedOutput => Config.TieWordEmbeddings ? "model.embed_tokens.weight" : null;

    /// <inheritdoc/>
    public override IReadOnlyList<IExpertLayer> ExpertLayers => [.. model.Layers.Select(l
        => l.Experts).OfType<IExpertLayer>()];

    /// <summary>Logits for each position: [B, T] token ids to [B, T, V].</summary>
    public override Tensor forward(Tensor tokens)
    {
        CheckLength(tokens);
        var x = model.Embed(tokens);                                                  // [B, T, C]
        for (var i = 0; i < model.Layers.Count; i++) x = RunBlock(i, x);
        x = model.Norm(x);                                                            // [B, T, C]
        if (lm_head is not null) return lm_head.call(x);                              // [B, T, V]
        // a view of the parameter: disposed here (see Gpt.forward)
        using var output = (TiedOutputAlias ?? model.EmbeddingWeight).t();
        return x.matmul(output);                                                      // [B, T, V], tied output layer
    }

    /// <summary><c>model</c>: the embedding, the layers and the final norm.</summary>
    private sealed class Body : nn.Module
    {
        private readonly TokenEmbedding embed_tokens;
        private readonly ModuleList<Layer> layers;
        private readonly RmsNorm norm;

        public Body(DecoderConfig config, ParameterFactory make) : base("model")
        {
            var rope = new Rope(config);
            embed_tokens = new TokenEmbedding(config.VocabularySize, config.Hidden, make);
            layers = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(l => new Layer(config, l, rope,
                make)).ToArray());
            norm = new RmsNorm(config.Hidden, config.RmsNormEpsilon, make);
            RegisterComponents();
        }

        public ModuleList<Layer> Layers => layers;

        public Parameter EmbeddingWeight => embed_tokens.Weight;

        public Tensor Embed(Tensor tokens) => embed_tokens.call(tokens);

        public Tensor Norm(Tensor x) => norm.call(x);
    }

    /// <summary>One decoder layer: x + attention(norm(x)), then + feed-forward(norm(x)).</summary>
    internal sealed class Layer : nn.Module<Tensor, Tensor>
    {
        private readonly RmsNorm _inputNorm, _postNorm;
        private readonly Attention _attention;
        private readonly nn.Module<Tensor, Tensor> _feedForward;

        public Layer(DecoderConfig config, int index, Rope rope, ParameterFactory make) : base(nameof(Layer))
        {
            _inputNorm = new RmsNorm(config.Hidden, config.RmsNormEpsilon, make);
            _attention = new Attention(config, rope, make);
            _postNorm = new RmsNorm(config.Hidden, config.RmsNormEpsilon, make);
            _feedForward = config.IsSparse(index) ? new SparseMoe(config, make) : new SwiGlu(config.Hidden,
                config.Intermediate, make);
            register_module("input_layernorm", _inputNorm);
            register_module("self_attn", _attention);
            register_module("post_attention_layernorm", _postNorm);
            register_module(config.IsSparse(index)
                && config.Family == DecoderFamily.Mixtral ? "block_sparse_moe" : "mlp", _feedForward);
        }

        public IExpertLayer? Experts => _feedForward as IExpertLayer;

        public override Tensor forward(Tensor x)
        {
            x = x + _attention.call(_inputNorm.call(x));
            return x + _feedForward.call(_postNorm.call(x));
        }
    }
}
