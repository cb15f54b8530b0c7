using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// Incremental GPT forward with a KV cache over a fixed pool of slots: each call feeds one token to each
/// of any subset of slots, each at its own position, and returns next-token logits. Sequences therefore
/// join and leave between calls (continuous batching), and a prompt is fed token by token through the
/// same path (its logits ignored) so a slot needs no separate prefill. The same architecture as
/// <see cref="Models.Gpt"/> (pre-norm blocks, 4x GELU MLP, tied output), computed from the engine's own
/// weights in its own numerics.
/// </summary>
internal sealed class GptDecoder : IDisposable
{
    private readonly GptWeights _w;
    private readonly Tensor[] _keys;     // per layer [S·T, nh, hs]: row slot·T + position
    private readonly Tensor[] _values;   // per layer [S·T, nh, hs]
    private readonly int _slots;
    private readonly int _context;
    private readonly int _heads;
    private readonly int _headSize;
    // Long-lived Scalars for the per-step arithmetic (see Sampler: implicit Scalar temporaries can be finalised mid-call).
    private readonly Scalar _contextScalar;
    private readonly Scalar _attentionScale;
    private readonly Scalar _negativeInfinity = float.NegativeInfinity.ToScalar();

    public GptDecoder(GptWeights weights, int slots)
    {
        _w = weights;
        var c = weights.Config;
        (_slots, _context, _heads, _headSize) = (slots, c.ContextLength, c.Heads, c.Embedding / c.Heads);
        _contextScalar = ((long)_context).ToScalar();
        _attentionScale = (1.0 / Math.Sqrt(_headSize)).ToScalar();
        _keys = [.. Enumerable.Range(0, c.Layers).Select(_ => zeros([slots * (long)_context, _heads, _headSize], dtype: weights.ComputeType, device: weights.Device))];
        _values = [.. Enumerable.Range(0, c.Layers).Select(_ => zeros([slots * (long)_context, _heads, _headSize], dtype: weights.ComputeType, device: weights.Device))];
    }

    /// <summary>Slots in the pool.</summary>
    public int Slots => _slots;

    /// <summary>For a mixture-of-experts model: per layer, the experts each row of the last <see cref="Step"/> chose, sorted ([A, k] as arrays); empty for a dense model.</summary>
    public int[][][] LastRouting { get; private set; } = [];

    /// <summary>Feeds <paramref name="tokens"/>[i] at <paramref name="positions"/>[i] to slot <paramref name="slots"/>[i]; returns fp32 logits [A, V].</summary>
    public Tensor Step(long[] slots, long[] tokens, long[] positions)
    {
        using var scope = NewDisposeScope();
        var (a, c) = (slots.Length, _w.Config.Embedding);
        var slot = tensor(slots, device: _w.Device);                                         // [A]
        var position = tensor(positions, device: _w.Device);                                 // [A]
        var row = slot.mul(_contextScalar).add(position);                                    // [A] cache rows written now
        var hidden = ~(arange(_contextScalar, device: _w.Device).unsqueeze(0) <= position.unsqueeze(1));   // [A, T] future positions
        var x = _w["wte.weight"].index_select(0, tensor(tokens, device: _w.Device)) + _w["wpe.weight"].index_select(0, position);   // [A, C]
        var routing = new int[_w.Config.Experts > 0 ? _w.Config.Layers : 0][][];
        for (var l = 0; l < _w.Config.Layers; l++)
        {
            var p = $"h.{l}.";
            var qkv = Linear(LayerNorm(x, p + "ln_1"), p + "attn.c_attn").split(c, 1);      // 3 x [A, C]
            var q = qkv[0].view(a, _heads, _headSize);                                         // [A, nh, hs]
            _keys[l].index_copy_(0, row, qkv[1].view(a, _heads, _headSize));
            _values[l].index_copy_(0, row, qkv[2].view(a, _heads, _headSize));
            var keys = _keys[l].view(_slots, _context, _heads, _headSize).index_select(0, slot);       // [A, T, nh, hs]
            var values = _values[l].view(_slots, _context, _heads, _headSize).index_select(0, slot);   // [A, T, nh, hs]
            var scores = einsum("ahd,athd->aht", q, keys).mul(_attentionScale);                // [A, nh, T]
            scores = scores.masked_fill(hidden.unsqueeze(1), _negativeInfinity);
            var attention = nn.functional.softmax(scores, -1);                                   // [A, nh, T]
            var y = einsum("aht,athd->ahd", attention, values).reshape(a, c);                   // [A, C]
            x = x + Linear(y, p + "attn.c_proj");
            var normed = LayerNorm(x, p + "ln_2");                                            // [A, C]
            x = x + (_w.Config.Experts > 0 ? Experts(normed, p + "mlp.", out routing[l]) : Mlp(normed, p + "mlp."));
        }
        LastRouting = routing;
        var logits = LayerNorm(x, "ln_f").matmul(_w["wte.weight"].t()).to(ScalarType.Float32);   // [A, V]
        return logits.MoveToOuterDisposeScope();
    }

    private Tensor Mlp(Tensor x, string prefix) => Linear(nn.functional.gelu(Linear(x, prefix + "c_fc")), prefix + "c_proj");

    /// <summary>The mixture-of-experts feed-forward in the engine's numerics, by the trainer's routing rule (<see cref="Models.ExpertRouting"/>).</summary>
    private Tensor Experts(Tensor x, string prefix, out int[][] chosenRows)
    {
        var k = _w.Config.TopK;
        var output = Models.ExpertRouting.Mix(x, nn.functional.linear(x, _w[prefix + "router.weight"]), _w.Config.Experts, k, normalize: true,
            (e, rows) => Mlp(rows, $"{prefix}experts.{e}."), out _, out var chosen);               // [A, C]
        var flat = chosen.sort(-1).Values.data<long>().ToArray();
        chosenRows = [.. Enumerable.Range(0, (int)chosen.shape[0]).Select(r => flat.Skip(r * k).Take(k).Select(v => (int)v).ToArray())];
        return output;
    }

    private Tensor Linear(Tensor x, string name) => nn.functional.linear(x, _w[name + ".weight"], _w[name + ".bias"]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [_w.Config.Embedding], _w[name + ".weight"], _w[name + ".bias"]);

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values)) t.Dispose();
        _contextScalar.Dispose();
        _attentionScale.Dispose();
        _negativeInfinity.Dispose();
    }
}
