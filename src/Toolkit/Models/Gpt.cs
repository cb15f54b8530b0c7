using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A decoder-only transformer in the shape of nanoGPT's <c>model.py</c> (Radford et al. 2019): token and position
/// embeddings, pre-norm blocks of causal self-attention and a 4x GELU MLP, a final layer norm, and logits through the
/// (tied) token embedding. No dropout, so training is deterministic. Field names follow nanoGPT's state-dict keys
/// (<c>wte</c>, <c>wpe</c>, <c>h</c>, <c>ln_f</c>).
/// </summary>
public sealed class Gpt : CausalLanguageModel
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly ModuleList<Block> h;
    private readonly LayerNorm ln_f;

    private static readonly Lock Seeding = new();

    /// <summary>
    /// Builds the model with nanoGPT's initialisation from the process-wide generator (use <see cref="Create"/> for a
    /// seeded model). Construction holds the lock <see cref="Create"/> seeds under, so an unseeded build elsewhere
    /// cannot draw from the generator between another's seed and its draws.
    /// </summary>
    public Gpt(GptConfig config) : base(nameof(Gpt))
    {
        Config = config.Validate();
        lock (Seeding)
        {
            wte = nn.Embedding(config.VocabularySize, config.Embedding);
            wpe = nn.Embedding(config.ContextLength, config.Embedding);
            h = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new Block(config)).ToArray());
            ln_f = nn.LayerNorm(config.Embedding);
            RegisterComponents();
            InitializeWeights();
        }
    }

    /// <summary>
    /// <c>torch.manual_seed(seed)</c>, then the model, under one process-wide lock that every GPT construction takes:
    /// the seed and the generator are process-global, so GPTs built at once (in-process ranks, tests in parallel) would
    /// otherwise interleave their draws and start from other weights. Every seeded GPT in the toolkit is built here.
    /// Code that draws from the global generator outside a GPT's construction is not excluded: seed its own generator.
    /// </summary>
    public static Gpt Create(GptConfig config, long seed)
    {
        lock (Seeding)
        {
            manual_seed(seed);
            return new Gpt(config);
        }
    }

    /// <summary>nanoGPT's initialisation: matrices and embeddings N(0, 0.02), biases 0, layer norms 1 (so the initial
    /// loss is about ln V).</summary>
    private void InitializeWeights()
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (p.dim() >= 2) nn.init.normal_(p, 0, 0.02);
            else if (name.EndsWith("bias", StringComparison.Ordinal)) nn.init.zeros_(p);
        }
    }

    /// <summary>The model's shape.</summary>
    public GptConfig Config { get; }

    /// <inheritdoc/>
    public override IModelConfig Shape => Config;

    /// <summary>Logits for each position: [B, T] token ids to [B, T, V].</summary>
    public override Tensor forward(Tensor tokens)
    {
        CheckLength(tokens);
        using var length = tokens.shape[1].ToScalar();                             // held for the call (TK0001)
        using var positions = arange(length, device: tokens.device);               // [T]
        var x = wte.call(tokens) + wpe.call(positions);                            // [B, T, C]
        for (var i = 0; i < h.Count; i++) x = RunBlock(i, x);
        x = ln_f.call(x);
        // a view of the parameter: disposed here, so a trainer that frees the parameter frees its storage
        using var output = (TiedOutputAlias ?? wte.weight!).t();
        return x.matmul(output);                                                   // [B, T, V], tied output layer
    }

    /// <inheritdoc/>
    public override IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks => [.. h];

    /// <inheritdoc/>
    public override string? TiedOutput => "wte.weight";

    /// <summary>The mixture-of-experts feed-forwards, one per block (empty for a dense model).</summary>
    public override IReadOnlyList<IExpertLayer> ExpertLayers => [.. h.Select(b
        => b.Experts).OfType<MixtureOfExperts>()];

    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm ln_1;
        private readonly CausalSelfAttention attn;
        private readonly LayerNorm ln_2;
        private readonly nn.Module<Tensor, Tensor> mlp;

        public Block(GptConfig config) : base(nameof(Block))
        {
            ln_1 = nn.LayerNorm(config.Embedding);
            attn = new CausalSelfAttention(config);
            ln_2 = nn.LayerNorm(config.Embedding);
            mlp = config.Experts > 0 ? new MixtureOfExperts(config) : new Mlp(config);
            RegisterComponents();
        }

        public MixtureOfExperts? Experts => mlp as MixtureOfExperts;

        public override Tensor forward(Tensor x)
        {
            x = x + attn.call(ln_1.call(x));
            return x + mlp.call(ln_2.call(x));
        }
    }

    private sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_attn;
        private readonly Linear c_proj;
        private readonly int _heads;

        public CausalSelfAttention(GptConfig config) : base(nameof(CausalSelfAttention))
        {
            c_attn = nn.Linear(config.Embedding, 3 * config.Embedding);
            c_proj = nn.Linear(config.Embedding, config.Embedding);
            _heads = config.Heads;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
            var qkv = c_attn.call(x).split(c, dim: 2);                              // 3 x [B, T, C]
            Tensor Heads(Tensor y) => y.view(b, t, _heads, c / _heads).transpose(1, 2);   // [B, nh, T, hs]
            var y = nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]),
                is_casual: true);   // [B, nh, T, hs]
            return c_proj.call(y.transpose(1, 2).contiguous().view(b, t, c));      // [B, T, C]
        }
    }

    internal sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_fc;
        private readonly Linear c_proj;

        private readonly bool _tanh;

        public Mlp(GptConfig config) : base(nameof(Mlp))
        {
            c_fc = nn.Linear(config.Embedding, 4 * config.Embedding);
            c_proj = nn.Linear(4 * config.Embedding, config.Embedding);
            _tanh = config.GeluTanh;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => c_proj.call(Gelu(c_fc.call(x), _tanh));   // [B, T, C]

        /// <summary>GELU, exact or with GPT-2's tanh approximation (<c>gelu_new</c>).</summary>
        public static Tensor Gelu(Tensor x, bool tanh) =>
            tanh ? nn.functional.gelu(x, GELU.Approximate.tanh) : nn.functional.gelu(x);
    }

    /// <summary>
    /// A mixture-of-experts feed-forward (Shazeer et al. 2017; Switch Transformer's load balancing): a linear router
    /// scores E experts (each the dense 4x MLP), every token goes to its top-k, their outputs mixed by the renormalised
    /// router probabilities (<see cref="ExpertRouting"/>). Routing is a hard choice, so a tiny numeric difference near
    /// a tie sends a token to other experts: the mismatch Ring-1T's IcePop is about.
    /// </summary>
    public sealed class MixtureOfExperts : nn.Module<Tensor, Tensor>, IExpertLayer
    {
        private readonly Linear router;
        private readonly ModuleList<Mlp> experts;
        private readonly int _topK;

        internal MixtureOfExperts(GptConfig config) : base(nameof(MixtureOfExperts))
        {
            router = nn.Linear(config.Embedding, config.Experts, hasBias: false);
            experts = nn.ModuleList(Enumerable.Range(0, config.Experts).Select(_ => new Mlp(config)).ToArray());
            _topK = config.TopK;
            RegisterComponents();
        }

        /// <inheritdoc/>
        public Tensor? LastLoadBalancingLoss { get; private set; }

        /// <inheritdoc/>
        public bool RecordRouting { get; set; }

        /// <inheritdoc/>
        public Tensor? LastRouting { get; private set; }

        /// <inheritdoc/>
        public override Tensor forward(Tensor x)
        {
            var shape = x.shape;
            var flat = x.reshape(-1, shape[^1]);                                        // [N, C]
            var output = ExpertRouting.Mix(flat, router.call(flat), experts.Count, _topK, normalize: true, (e,
                rows) => experts[e].call(rows),
                out var probabilities, out var chosen);                                 // [N, C]
            LastLoadBalancingLoss = ExpertRouting.LoadBalancing(chosen, probabilities, experts.Count);
            if (RecordRouting) LastRouting = ExpertRouting.Record(LastRouting, chosen);
            return output.reshape(shape);
        }
    }
}
