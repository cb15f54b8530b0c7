using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// How a model's parameters are created: initialised as transformers does for a new model (matrices N(0, σ) from a
/// seeded generator, norms 1, biases 0), or as placeholders that only carry a shape (a stride-0 view of one zero) for
/// weights that a loader or a sharded trainer fills in later, so that building a 7 B model allocates nothing.
/// </summary>
internal sealed class ParameterFactory(ScalarType dtype, Generator? generator, double std = 0.02)
{
    /// <summary>Placeholders of <paramref name="dtype"/>.</summary>
    public static ParameterFactory Placeholders(ScalarType dtype) => new(dtype, null);

    public Parameter Matrix(params long[] shape) => Make(shape, t => t.normal_(0, std, generator));

    public Parameter Ones(params long[] shape) => Make(shape, t =>
    {
        using var one = 1.ToScalar();                                                 // held for the call (TK0001)
        return t.fill_(one);
    });

    public Parameter Zeros(params long[] shape) => Make(shape, t => t.zero_());

    private Parameter Make(long[] shape, Func<Tensor, Tensor> init)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var value = generator is null ? zeros(1, dtype: dtype).expand(shape) : init(empty(shape,
            dtype: ScalarType.Float32)).to(dtype);
        return (Parameter)new Parameter(value).MoveToOuterDisposeScope();
    }
}

/// <summary>A linear map y = x Wᵀ (+ b) with Hugging Face's names (<c>weight</c> [out, in], <c>bias</c>
/// [out]).</summary>
internal sealed class Dense : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;

    public Dense(long input, long output, bool hasBias, ParameterFactory make) : base(nameof(Dense))
    {
        weight = make.Matrix(output, input);
        register_parameter(nameof(weight), weight);
        if (!hasBias) return;
        bias = make.Zeros(output);
        register_parameter(nameof(bias), bias);
    }

    public override Tensor forward(Tensor x) => nn.functional.linear(x, weight, bias);
}

/// <summary>RMSNorm as Hugging Face's Llama computes it: in fp32, x / √(mean(x²) + ε), cast back, times the
/// weight.</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _epsilon;

    public RmsNorm(long size, double epsilon, ParameterFactory make) : base(nameof(RmsNorm))
    {
        weight = make.Ones(size);
        _epsilon = epsilon;
        register_parameter(nameof(weight), weight);
    }

    public override Tensor forward(Tensor x) => weight * Normalize(x, _epsilon);

    /// <summary>The normalisation without the weight, in x's dtype.</summary>
    public static Tensor Normalize(Tensor x, double epsilon)
    {
        var wide = x.to(ScalarType.Float32);
        using var eps = epsilon.ToScalar();                                           // held for the call (TK0001)
        return (wide * wide.square().mean([-1], keepdim: true).add(eps).rsqrt()).to(x.dtype);
    }
}

/// <summary>The token embedding (<c>weight</c> [V, C]): a lookup, whose backward needs no weight values.</summary>
internal sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public TokenEmbedding(long vocabulary, long width, ParameterFactory make) : base(nameof(TokenEmbedding))
    {
        weight = make.Matrix(vocabulary, width);
        register_parameter(nameof(weight), weight);
    }

    /// <summary>The weight (the tied output layer reads it).</summary>
    public Parameter Weight => weight;

    public override Tensor forward(Tensor tokens)
    {
        var rows = weight.index_select(0, tokens.reshape(-1));                        // [B·T, C]
        return rows.view([.. tokens.shape, weight.shape[1]]);                         // [B, T, C]
    }
}

/// <summary>Grouped-query self-attention with rotary positions (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>,
/// <c>o_proj</c>).</summary>
internal sealed class Attention : nn.Module<Tensor, Tensor>
{
    private readonly Dense q_proj, k_proj, v_proj, o_proj;
    private readonly int _heads, _kvHeads, _headDim;
    private readonly Rope _rope;

    public Attention(DecoderConfig c, Rope rope, ParameterFactory make) : base(nameof(Attention))
    {
        (_heads, _kvHeads, _headDim, _rope) = (c.Heads, c.KvHeads, c.HeadDim, rope);
        q_proj = new Dense(c.Hidden, (long)c.Heads * c.HeadDim, c.AttentionBias, make);
        k_proj = new Dense(c.Hidden, (long)c.KvHeads * c.HeadDim, c.AttentionBias, make);
        v_proj = new Dense(c.Hidden, (long)c.KvHeads * c.HeadDim, c.AttentionBias, make);
        o_proj = new Dense((long)c.Heads * c.HeadDim, c.Hidden, false, make);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (b, t) = (x.shape[0], x.shape[1]);
        var (cos, sin) = _rope.Table(t, x.device, x.dtype);                           // [T, d] each
        var q = Rope.Apply(q_proj.call(x).view(b, t, _heads, _headDim).transpose(1, 2), cos, sin);     // [B, nh, T, d]
        var k = Rope.Apply(k_proj.call(x).view(b, t, _kvHeads, _headDim).transpose(1, 2), cos, sin);   // [B, kv, T, d]
        var v = v_proj.call(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);                          // [B, kv, T, d]
        (k, v) = (RepeatKv(k), RepeatKv(v));                                                            // [B, nh, T, d]
        var y = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);                  // [B, nh, T, d]
        return o_proj.call(y.transpose(1, 2).reshape(b, t, (long)_heads * _headDim));                 // [B, T, C]
    }

    /// <summary>Hugging Face's <c>repeat_kv</c>: query head h reads key/value head h / (heads / kv heads).</summary>
    private Tensor RepeatKv(Tensor x)
    {
        if (_kvHeads == _heads) return x;
        var (b, t) = (x.shape[0], x.shape[2]);
        return x.unsqueeze(2).expand(b, _kvHeads, _heads / _kvHeads, t, _headDim).reshape(b, _heads, t, _headDim);
    }
}

/// <summary>The SwiGLU feed-forward, down(silu(gate(x)) · up(x)), with the names a family gives its three
/// matrices.</summary>
internal sealed class SwiGlu : nn.Module<Tensor, Tensor>
{
    private readonly Dense _gate, _up, _down;

    /// <param name="width">The hidden size.</param>
    /// <param name="inner">The intermediate size.</param>
    /// <param name="make">Creates the parameters.</param>
    /// <param name="mixtralNames">Mixtral's expert names (w1 gate, w3 up, w2 down) instead of gate_proj, up_proj,
    /// down_proj.</param>
    public SwiGlu(long width, long inner, ParameterFactory make, bool mixtralNames = false) : base(nameof(SwiGlu))
    {
        (_gate, _up, _down) = (new Dense(width, inner, false, make), new Dense(width, inner, false, make),
            new Dense(inner, width, false, make));
        register_module(mixtralNames ? "w1" : "gate_proj", _gate);
        register_module(mixtralNames ? "w3" : "up_proj", _up);
        register_module(mixtralNames ? "w2" : "down_proj", _down);
    }

    public override Tensor forward(Tensor x) => _down.call(nn.functional.silu(_gate.call(x)) * _up.call(x));
}

/// <summary>
/// A sparse mixture of SwiGLU experts: Mixtral's <c>block_sparse_moe</c> (router <c>gate</c>, experts w1/w2/w3, gates
/// renormalised) or Qwen2-MoE's <c>mlp</c> (router <c>gate</c>, experts gate/up/down_proj, gates renormalised only with
/// <c>norm_topk_prob</c>, plus a <c>shared_expert</c> scaled by sigmoid(<c>shared_expert_gate</c>(x))).
/// </summary>
internal sealed class SparseMoe : nn.Module<Tensor, Tensor>, IExpertLayer
{
    private readonly Dense _router;
    private readonly ModuleList<SwiGlu> _experts;
    private readonly SwiGlu? _shared;
    private readonly Dense? _sharedGate;
    private readonly int _topK;
    private readonly bool _normalize;

    public SparseMoe(DecoderConfig c, ParameterFactory make) : base(nameof(SparseMoe))
    {
        var mixtral = c.Family == DecoderFamily.Mixtral;
        (_topK, _normalize) = (c.TopK, c.NormalizeTopK);
        _router = new Dense(c.Hidden, c.Experts, false, make);
        _experts = nn.ModuleList(Enumerable.Range(0, c.Experts).Select(_ => new SwiGlu(c.Hidden, c.RoutedWidth, make,
            mixtral)).ToArray());
        register_module("gate", _router);
        register_module("experts", _experts);
        if (c.SharedExpertIntermediate <= 0) return;
        _shared = new SwiGlu(c.Hidden, c.SharedExpertIntermediate, make);
        _sharedGate = new Dense(c.Hidden, 1, false, make);
        register_module("shared_expert", _shared);
        register_module("shared_expert_gate", _sharedGate);
    }

    /// <inheritdoc/>
    public bool RecordRouting { get; set; }

    /// <inheritdoc/>
    public Tensor? LastRouting { get; private set; }

    /// <inheritdoc/>
    public Tensor? LastLoadBalancingLoss { get; private set; }

    public override Tensor forward(Tensor x)
    {
        var shape = x.shape;
        var flat = x.reshape(-1, shape[^1]);                                          // [N, C]
        var output = ExpertRouting.Mix(flat, _router.call(flat), _experts.Count, _topK, _normalize, (e,
            rows) => _experts[e].call(rows),
            out var probabilities, out var chosen);                                   // [N, C]
        LastLoadBalancingLoss = ExpertRouting.LoadBalancing(chosen, probabilities, _experts.Count);
        if (RecordRouting) LastRouting = ExpertRouting.Record(LastRouting, chosen);
        if (_shared is not null) output = output + nn.functional.sigmoid(_sharedGate!.call(flat)) * _shared.call(flat);
        return output.reshape(shape);
    }
}
