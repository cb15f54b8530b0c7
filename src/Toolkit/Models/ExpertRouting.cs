using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>A sparse mixture-of-experts layer's routing as the last forward saw it (for diagnostics and the
/// load-balancing loss).</summary>
public interface IExpertLayer
{
    /// <summary>When true, <see cref="LastRouting"/> keeps the experts each token chose in the last forward.</summary>
    bool RecordRouting { get; set; }

    /// <summary>The last forward's chosen experts, [tokens, k] (rows in the input's order), if recorded.</summary>
    Tensor? LastRouting { get; }

    /// <summary>Switch's load-balancing loss of the last forward: E · Σ_e f_e · P_e (1 when balanced).</summary>
    Tensor? LastLoadBalancingLoss { get; }
}

/// <summary>
/// The routing rule every mixture of experts here shares, so that the trainer and the generation engine differ only in
/// numerics: router probabilities in fp32 (a softmax over all experts), the top-k experts per row, their probabilities
/// as gates (renormalised to sum to 1 for Mixtral and the toolkit's GPT; as they are for Qwen2-MoE without
/// <c>norm_topk_prob</c>), each expert run on the rows that chose it and its output added with its gate.
/// </summary>
internal static class ExpertRouting
{
    /// <summary>The mixed output [N, C] of rows <paramref name="x"/> [N, C].</summary>
    /// <param name="x">Rows [N, C].</param>
    /// <param name="routerLogits">Router scores [N, E].</param>
    /// <param name="count">E.</param>
    /// <param name="topK">k.</param>
    /// <param name="normalize">Renormalise the k gates to sum to 1.</param>
    /// <param name="expert">Runs expert e on some rows [M, C].</param>
    /// <param name="probabilities">Router probabilities [N, E] (fp32).</param>
    /// <param name="chosen">The chosen experts [N, k].</param>
    public static Tensor Mix(Tensor x, Tensor routerLogits, int count, int topK, bool normalize, Func<int, Tensor,
        Tensor> expert,
        out Tensor probabilities, out Tensor chosen)
    {
        probabilities = nn.functional.softmax(routerLogits.to(ScalarType.Float32), -1);    // [N, E]
        var (top, picked) = probabilities.topk(topK, -1);                                   // [N, k] each
        chosen = picked;
        var gates = (normalize ? top / top.sum(-1, keepdim: true) : top).to(x.dtype);       // [N, k]
        var output = zeros_like(x);                                                         // [N, C]
        // numbers held for their calls (TK0001)
        using var one = 1.ToScalar();
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

    /// <summary>
    /// Switch's load-balancing loss E · Σ_e f_e · P_e from the chosen experts [N, k] and the probabilities [N, E].
    /// </summary>
    public static Tensor LoadBalancing(Tensor chosen, Tensor probabilities, int count)
    {
        // held for the calls (TK0001)
        using var k = chosen.shape[1].ToScalar();
        using var experts = count.ToScalar();
        var share = nn.functional.one_hot(chosen, count).sum(1).to(ScalarType.Float32).mean([0]) / k;   // [E] f_e
        return (share * probabilities.mean([0])).sum() * experts;
    }

    /// <summary>Keeps <paramref name="chosen"/> as the layer's recorded routing (replacing, and freeing, the previous
    /// one).</summary>
    public static Tensor Record(Tensor? previous, Tensor chosen)
    {
        previous?.Dispose();
        return chosen.detach().clone().DetachFromDisposeScope();                              // read after the step
    }
}
