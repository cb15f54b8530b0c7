using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A decoder-only transformer in the shape of nanoGPT's <c>model.py</c> (Radford et al. 2019):
/// token and position embeddings, pre-norm blocks of causal self-attention and a 4x GELU MLP, a final
/// layer norm, and logits through the (tied) token embedding. No dropout, so training is deterministic.
/// Field names follow nanoGPT's state-dict keys (<c>wte</c>, <c>wpe</c>, <c>h</c>, <c>ln_f</c>).
/// </summary>
public sealed class Gpt : nn.Module<Tensor, Tensor>, ILayeredModule
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
    /// otherwise interleave their draws and start from other weights. Every seeded GPT in the toolkit is built here. Code
    /// that draws from the global generator outside a GPT's construction is not excluded: seed its own generator.
    /// </summary>
    public static Gpt Create(GptConfig config, long seed)
    {
        lock (Seeding)
        {
            manual_seed(seed);
            return new Gpt(config);
        }
    }

    /// <summary>nanoGPT's initialisation: matrices and embeddings N(0, 0.02), biases 0, layer norms 1 (so the initial loss is about ln V).</summary>
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

    /// <summary>Logits for each position: [B, T] token ids to [B, T, V].</summary>
    public override Tensor forward(Tensor tokens)
    {
        var t = tokens.shape[1];
        if (t > Config.ContextLength)
            throw new ArgumentException($"Sequence length {t} exceeds the context length {Config.ContextLength}.", nameof(tokens));
        using var length = t.ToScalar();                                           // held for the call (TK0001)
        using var positions = arange(length, device: tokens.device);               // [T]
        var x = wte.call(tokens) + wpe.call(positions);                            // [B, T, C]
        for (var i = 0; i < h.Count; i++) x = BlockRunner is { } run ? run(i, x) : h[i].call(x);
        x = ln_f.call(x);
        using var output = (TiedOutputAlias ?? wte.weight!).t();                   // a view of the parameter: disposed here, so a trainer that frees the parameter frees its storage
        return x.matmul(output);                                                   // [B, T, V], tied output layer
    }

    /// <inheritdoc/>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks => [.. h];

    /// <inheritdoc/>
    public Func<int, Tensor, Tensor>? BlockRunner { get; set; }

    /// <inheritdoc/>
    public string? TiedOutput => "wte.weight";

    /// <inheritdoc/>
    public Tensor? TiedOutputAlias { get; set; }

    /// <summary>The mixture-of-experts feed-forwards, one per block (empty for a dense model).</summary>
    public IReadOnlyList<MixtureOfExperts> ExpertLayers => [.. h.Select(b => b.Experts).OfType<MixtureOfExperts>()];

    /// <summary>The load-balancing loss of the last forward, summed over blocks (null for a dense model).</summary>
    public Tensor? LoadBalancingLoss() => ExpertLayers.Count == 0 ? null : ExpertLayers.Select(e => e.LastLoadBalancingLoss!).Aggregate((a, b) => a + b);

    /// <summary>Mean next-token cross-entropy of a batch (computed in fp32 whatever the model's dtype).</summary>
    public Tensor Loss(Tensor tokens, Tensor targets)
    {
        var logits = call(tokens).to(ScalarType.Float32);                          // [B, T, V]
        return nn.functional.cross_entropy(logits.view(-1, Config.VocabularySize), targets.view(-1));
    }

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
            var y = nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), is_casual: true);   // [B, nh, T, hs]
            return c_proj.call(y.transpose(1, 2).contiguous().view(b, t, c));      // [B, T, C]
        }
    }

    internal sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_fc;
        private readonly Linear c_proj;

        public Mlp(GptConfig config) : base(nameof(Mlp))
        {
            c_fc = nn.Linear(config.Embedding, 4 * config.Embedding);
            c_proj = nn.Linear(4 * config.Embedding, config.Embedding);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => c_proj.call(nn.functional.gelu(c_fc.call(x)));   // [B, T, C]
    }

    /// <summary>
    /// A mixture-of-experts feed-forward (Shazeer et al. 2017; Switch Transformer's load balancing): a linear
    /// router scores E experts (each the dense 4x MLP), every token goes to its top-k, their outputs mixed by
    /// the renormalised router probabilities. Routing is a hard choice, so a tiny numeric difference near a
    /// tie sends a token to other experts: the mismatch Ring-1T's IcePop is about. The router runs in fp32.
    /// </summary>
    public sealed class MixtureOfExperts : nn.Module<Tensor, Tensor>
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

        /// <summary>Switch's load-balancing loss of the last forward: E · Σ_e f_e · P_e (1 when balanced).</summary>
        public Tensor? LastLoadBalancingLoss { get; private set; }

        /// <summary>When true, <see cref="LastRouting"/> keeps the experts each token chose in the last forward.</summary>
        public bool RecordRouting { get; set; }

        /// <summary>The last forward's chosen experts, [tokens, k] (rows in the input's order), if recorded.</summary>
        public Tensor? LastRouting { get; private set; }

        /// <summary>
        /// The routing rule, shared by the trainer and the generation engine so they differ only in numerics:
        /// router probabilities in fp32, the top-k experts per row, their probabilities renormalised as gates,
        /// each expert run on the rows that chose it.
        /// </summary>
        /// <param name="x">Rows [N, C].</param>
        /// <param name="routerLogits">Router scores [N, E].</param>
        /// <param name="count">E.</param>
        /// <param name="topK">k.</param>
        /// <param name="expert">Runs expert e on some rows [M, C].</param>
        /// <param name="probabilities">Router probabilities [N, E] (fp32).</param>
        /// <param name="chosen">The chosen experts [N, k].</param>
        /// <returns>The mixed output [N, C].</returns>
        internal static Tensor Mix(Tensor x, Tensor routerLogits, int count, int topK, Func<int, Tensor, Tensor> expert, out Tensor probabilities, out Tensor chosen)
        {
            probabilities = nn.functional.softmax(routerLogits.to(ScalarType.Float32), -1);    // [N, E]
            var (top, picked) = probabilities.topk(topK, -1);                                   // [N, k] each
            chosen = picked;
            var gates = (top / top.sum(-1, keepdim: true)).to(x.dtype);                          // [N, k]
            var output = zeros_like(x);                                                         // [N, C]
            using var one = 1.ToScalar();                                                       // numbers held for their calls (TK0001)
            for (var e = 0; e < count; e++)
            {
                using var expertIndex = e.ToScalar();
                var hit = picked.eq(expertIndex);                                               // [N, k]
                var rows = hit.any(-1).nonzero().squeeze(-1);                                   // [M]
                if (rows.numel() == 0) continue;
                var weight = (gates * hit.to(gates.dtype)).sum(-1).index_select(0, rows).unsqueeze(-1);   // [M, 1]
                output = output.index_add(0, rows, expert(e, x.index_select(0, rows)) * weight, one);
            }
            return output;
        }

        /// <inheritdoc/>
        public override Tensor forward(Tensor x)
        {
            var shape = x.shape;
            var flat = x.reshape(-1, shape[^1]);                                        // [N, C]
            var output = Mix(flat, router.call(flat), experts.Count, _topK, (e, rows) => experts[e].call(rows), out var probabilities, out var chosen);   // [N, C]
            using var k = _topK.ToScalar();                                             // held for the calls (TK0001)
            using var count = experts.Count.ToScalar();
            var share = nn.functional.one_hot(chosen, experts.Count).sum(1).to(ScalarType.Float32).mean([0]) / k;   // [E] f_e
            LastLoadBalancingLoss = (share * probabilities.mean([0])).sum() * count;
            if (RecordRouting)
            {
                LastRouting?.Dispose();
                LastRouting = chosen.detach().clone().DetachFromDisposeScope();   // read after the step; replaced (and freed) by the next forward
            }
            return output.reshape(shape);
        }
    }
}
