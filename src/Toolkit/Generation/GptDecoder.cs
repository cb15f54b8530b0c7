using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// The toolkit's GPT (<see cref="Gpt"/>: learned positions, pre-norm blocks of fused-qkv attention and a 4x GELU MLP or
/// a mixture of experts, tied output) as an incremental forward over the engine's own weights in its own numerics.
/// </summary>
internal sealed class GptDecoder(EngineWeights weights, int slots, int context) : IncrementalDecoder(weights, slots,
    context,
    ((GptConfig)weights.Config).Layers, ((GptConfig)weights.Config).Heads, ((GptConfig)weights.Config).Heads,
    ((GptConfig)weights.Config).Embedding / ((GptConfig)weights.Config).Heads)
{
    private readonly GptConfig _config = (GptConfig)weights.Config;

    protected override Tensor Run(Batch batch)
    {
        var c = _config.Embedding;
        // [N, C]
        var x = W["wte.weight"].index_select(0, batch.Tokens) + W["wpe.weight"].index_select(0, batch.Positions);
        for (var l = 0; l < _config.Layers; l++)
        {
            var p = $"h.{l}.";
            var qkv = Linear(LayerNorm(x, p + "ln_1"), p + "attn.c_attn").split(c, 1);                   // 3 x [N, C]
            Tensor Heads(Tensor t) => t.view(-1, _config.Heads, HeadDim);                                 // [N, h, d]
            x = x + Linear(Attend(l, Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), batch), p + "attn.c_proj");
            var normed = LayerNorm(x, p + "ln_2");                                                         // [N, C]
            x = x + (_config.Experts > 0 ? Experts(normed, p + "mlp.", batch) : Mlp(normed, p + "mlp."));
        }
        var last = LayerNorm(x.index_select(0, batch.LastRows), "ln_f");                                 // [C, C]
        return last.matmul(W["wte.weight"].t());                                                          // [C, V]
    }

    private Tensor Mlp(Tensor x, string prefix) =>
        Linear(Gpt.Mlp.Gelu(Linear(x, prefix + "c_fc"), _config.GeluTanh), prefix + "c_proj");

    /// <summary>The mixture of experts in the engine's numerics, by the trainer's routing rule
    /// (<see cref="ExpertRouting"/>).</summary>
    private Tensor Experts(Tensor x, string prefix, Batch batch)
    {
        var output = ExpertRouting.Mix(x, W.Router(x, prefix + "router"), _config.Experts,
            _config.TopK,
            normalize: true, (e, rows) => Mlp(rows, $"{prefix}experts.{e}."), out _, out var chosen);   // [N, C]
        RecordRouting(chosen, batch);
        return output;
    }

    private Tensor Linear(Tensor x, string name) => W.Linear(x, name);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [_config.Embedding], W[name + ".weight"], W[name + ".bias"]);
}
