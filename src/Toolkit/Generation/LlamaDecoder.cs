using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// The Hugging Face decoder families (<see cref="Decoder"/>: RMSNorm, grouped-query attention with rotary positions, a
/// SwiGLU feed-forward or a sparse mixture of experts, tied or separate output) as an incremental forward over the
/// engine's own weights in its own numerics. Keys are cached after rotation, so a cached position is never rotated
/// again.
/// </summary>
internal sealed class LlamaDecoder : IncrementalDecoder
{
    private readonly DecoderConfig _c;
    private readonly Rope _rope;

    public LlamaDecoder(EngineWeights weights, int slots, int context)
        : base(weights, slots, context, ((DecoderConfig)weights.Config).Layers, ((DecoderConfig)weights.Config).Heads,
            ((DecoderConfig)weights.Config).KvHeads, ((DecoderConfig)weights.Config).HeadDim)
    {
        _c = (DecoderConfig)weights.Config;
        _rope = new Rope(_c);
    }

    protected override Tensor Run(Batch batch)
    {
        var x = W["model.embed_tokens.weight"].index_select(0, batch.Tokens);                         // [N, C]
        // [N, d] each, fp32
        var (cos, sin) = _rope.At(batch.Positions, W.Device);
        (cos, sin) = (cos.to(W.ComputeType).unsqueeze(1), sin.to(W.ComputeType).unsqueeze(1));         // [N, 1, d]
        for (var l = 0; l < _c.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            var h = Norm(x, p + "input_layernorm");
            var q = Rope.Apply(Linear(h, p + "self_attn.q_proj").view(-1, Heads, HeadDim), cos, sin);   // [N, h, d]
            var k = Rope.Apply(Linear(h, p + "self_attn.k_proj").view(-1, KvHeads, HeadDim), cos, sin); // [N, kv, d]
            var v = Linear(h, p + "self_attn.v_proj").view(-1, KvHeads, HeadDim);                       // [N, kv, d]
            x = x + Linear(Attend(l, q, k, v, batch), p + "self_attn.o_proj");
            h = Norm(x, p + "post_attention_layernorm");
            x = x + (_c.IsSparse(l) ? Experts(h, p, batch) : SwiGlu(h, p + "mlp.", "gate_proj", "up_proj",
                "down_proj"));
        }
        var last = Norm(x.index_select(0, batch.LastRows), "model.norm");                              // [C, C]
        // [C, V]
        return last.matmul((_c.TieWordEmbeddings ? W["model.embed_tokens.weight"] : W["lm_head.weight"]).t());
    }

    private Tensor Experts(Tensor x, string layer, Batch batch)
    {
        var mixtral = _c.Family == DecoderFamily.Mixtral;
        var prefix = layer + (mixtral ? "block_sparse_moe." : "mlp.");
        var output = ExpertRouting.Mix(x, W.Router(x, prefix + "gate"), _c.Experts, _c.TopK, _c.NormalizeTopK,
            (e, rows) => mixtral ? SwiGlu(rows, $"{prefix}experts.{e}.", "w1", "w3", "w2") : SwiGlu(rows,
                $"{prefix}experts.{e}.", "gate_proj", "up_proj", "down_proj"),
            out _, out var chosen);                                                                     // [N, C]
        RecordRouting(chosen, batch);
        if (_c.SharedExpertIntermediate <= 0) return output;
        var shared = SwiGlu(x, prefix + "shared_expert.", "gate_proj", "up_proj", "down_proj");
        return output + nn.functional.sigmoid(Linear(x, prefix + "shared_expert_gate")) * shared;
    }

    private Tensor SwiGlu(Tensor x, string prefix, string gate, string up, string down) =>
        Linear(nn.functional.silu(Linear(x, prefix + gate)) * Linear(x, prefix + up), prefix + down);

    private Tensor Linear(Tensor x, string name) => W.Linear(x, name);

    private Tensor Norm(Tensor x, string name) => W[name + ".weight"] * RmsNorm.Normalize(x, _c.RmsNormEpsilon);
}
