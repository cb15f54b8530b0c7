using Toolkit.Generation;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>
/// The trainer's view of rollouts: packs sequences (prompt, then response) into one padded batch, runs the policy once,
/// and returns per response token log π_train and the entropy of π_train at that position, both [N, T] with a
/// validity mask, and the engine's recorded log π_infer in the same layout.
/// </summary>
internal static class ResponseScoring
{
    /// <summary>Tensors for <paramref name="sequences"/>: LogpTrain (with gradient), LogpInfer, Valid, Entropy (no
    /// gradient).</summary>
    public static (Tensor LogpTrain, Tensor LogpInfer, Tensor Valid, Tensor Entropy) Score(CausalLanguageModel model,
        IReadOnlyList<Sequence> sequences, double temperature)
    {
        var n = sequences.Count;
        // inputs drop the last token
        var longest = sequences.Max(s => s.Prompt.Count + s.Tokens.Count) - 1;
        var responses = sequences.Max(s => s.Tokens.Count);
        var inputs = new long[n * longest];
        var targets = new long[n * longest];
        var positions = new long[n * responses];
        var infer = new float[n * responses];
        var valid = new float[n * responses];
        for (var i = 0; i < n; i++)
        {
            var s = sequences[i];
            var all = s.Prompt.Concat(s.Tokens).ToArray();
            for (var t = 0; t < all.Length - 1; t++) (inputs[i * longest + t], targets[i * longest + t]) = (all[t],
                all[t + 1]);
            for (var t = 0; t < s.Tokens.Count; t++)
            {
                // the position whose logits predict response token t
                positions[i * responses + t] = s.Prompt.Count - 1 + t;
                infer[i * responses + t] = s.LogProbs[t];
                valid[i * responses + t] = 1;
            }
        }
        foreach (var layer in model.ExpertLayers) layer.RecordRouting = true;
        // held for the call (TK0001)
        using var temperatureScalar = temperature.ToScalar();
        var logits = model.call(tensor(inputs, [n, longest])).to(ScalarType.Float32) / temperatureScalar;  // [N, L, V]
        var logp = nn.functional.log_softmax(logits, -1);                                                   // [N, L, V]
        var position = tensor(positions, [n, responses]);                                                   // [N, T]
        // [N, T]
        var tokenLogp = logp.gather(2, tensor(targets, [n, longest]).unsqueeze(-1)).squeeze(-1).gather(1, position);
        Tensor entropy;
        using (no_grad()) entropy = (-(logp.exp() * logp).sum(-1)).gather(1, position);                    // [N, T]
        var mask = tensor(valid, [n, responses]);
        return (tokenLogp * mask, tensor(infer, [n, responses]), mask, entropy * mask);
    }

    /// <summary>
    /// Per layer, how many response tokens the trainer routed to another set of experts than the rollout engine did
    /// (read from the last <see cref="Score"/> forward): the quantity the IcePop authors argue drives the collapse.
    /// Empty for a dense model.
    /// </summary>
    public static long[] RoutingFlips(CausalLanguageModel model, IReadOnlyList<Sequence> sequences)
    {
        var layers = model.ExpertLayers;
        if (layers.Count == 0 || sequences.Any(s => s.Routing.Count != s.Tokens.Count)) return [];
        var longest = sequences.Max(s => s.Prompt.Count + s.Tokens.Count) - 1;
        var flips = new long[layers.Count];
        for (var l = 0; l < layers.Count; l++)
        {
            using var sorted = layers[l].LastRouting!.sort(-1).Values;                         // [N·L, k]
            var k = (int)sorted.shape[1];
            var chosen = sorted.data<long>().ToArray();
            for (var i = 0; i < sequences.Count; i++)
                for (var t = 0; t < sequences[i].Tokens.Count; t++)
                {
                    var row = (i * longest + sequences[i].Prompt.Count - 1 + t) * k;
                    if (!sequences[i].Routing[t][l].SequenceEqual(chosen.Skip(row).Take(k).Select(v
                        => (int)v))) flips[l]++;
                }
        }
        return flips;
    }

    /// <summary>
    /// Inputs, targets (−100 where no loss) for supervised training on reference answers: the prompt's tokens, then
    /// the answer's and the stop token (tokenised apart, as the engine generates after the prompt); the loss covers the
    /// answer and the stop token.
    /// </summary>
    public static (Tensor Inputs, Tensor Targets) SupervisedBatch(IReadOnlyList<Problem> problems, TaskTokens tokens)
    {
        var rows = problems.Select(p => (Prompt: tokens.Prompt(p), Answer: tokens.Answer(p)))
            .Select(r => (Prompt: r.Prompt.Length, All: (long[])[.. r.Prompt, .. r.Answer])).ToList();
        var longest = rows.Max(r => r.All.Length) - 1;
        var inputs = new long[rows.Count * longest];
        var targets = Enumerable.Repeat(-100L, rows.Count * longest).ToArray();
        for (var i = 0; i < rows.Count; i++)
            for (var t = 0; t < rows[i].All.Length - 1; t++)
            {
                inputs[i * longest + t] = rows[i].All[t];
                if (t >= rows[i].Prompt - 1) targets[i * longest + t] = rows[i].All[t + 1];
            }
        return (tensor(inputs, [rows.Count, longest]), tensor(targets, [rows.Count, longest]));
    }
}
