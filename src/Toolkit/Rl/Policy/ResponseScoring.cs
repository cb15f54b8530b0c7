using Toolkit.Generation;
using Toolkit.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Rl;

/// <summary>
/// The trainer's view of rollouts: packs sequences (prompt, then response) into padded batches of similar lengths, runs
/// the policy on each, and returns per response token log π_train and the entropy of π_train at that position, both
/// [N, T] with a validity mask, and the engine's recorded log π_infer in the same layout.
/// </summary>
internal static class ResponseScoring
{
    /// <summary>Most forwards one scoring splits its sequences into.</summary>
    internal const int MaxBuckets = 4;

    /// <summary>A forward's fixed cost, in padded tokens, when choosing buckets.</summary>
    private const int ForwardCost = 64;

    /// <summary>
    /// Tensors for <paramref name="sequences"/>: LogpTrain (with gradient), LogpInfer, Valid, Entropy (with gradient
    /// only when <paramref name="entropyGradient"/>, for an entropy bonus), all [N, T] in the sequences' order. The
    /// policy runs on the sequences sorted by length in up to <see cref="MaxBuckets"/> forwards, each padded only to
    /// its own longest (<see cref="Buckets"/>): a long-tailed batch costs its tokens, not N times its longest.
    /// </summary>
    /// <param name="model">The policy.</param>
    /// <param name="sequences">Finished or partial rollouts (prompt, then response tokens).</param>
    /// <param name="temperature">The sampling temperature the engine divided the logits by.</param>
    /// <param name="entropyGradient">Keep the entropy's gradient (an entropy bonus).</param>
    /// <param name="eachForward">Called after each forward with the sequences it scored, while the model's
    /// recorded routing is theirs (<see cref="RoutingFlips"/>).</param>
    public static (Tensor LogpTrain, Tensor LogpInfer, Tensor Valid, Tensor Entropy) Score(CausalLanguageModel model,
        IReadOnlyList<Sequence> sequences, double temperature, bool entropyGradient = false,
        Action<IReadOnlyList<Sequence>>? eachForward = null)
    {
        var n = sequences.Count;
        var responses = sequences.Max(s => s.Tokens.Count);
        var infer = new float[n * responses];
        var valid = new float[n * responses];
        for (var i = 0; i < n; i++)
            for (var t = 0; t < sequences[i].Tokens.Count; t++)
                (infer[i * responses + t], valid[i * responses + t]) = (sequences[i].LogProbs[t], 1);
        foreach (var layer in model.ExpertLayers) layer.RecordRouting = true;
        var (logps, entropies, order) = (new List<Tensor>(), new List<Tensor>(), new List<long>());
        foreach (var bucket in Buckets(sequences))
        {
            var part = bucket.Select(i => sequences[i]).ToList();
            var (logp, entropy) = ScoreBucket(model, part, temperature, entropyGradient);             // [n_b, T_b]
            eachForward?.Invoke(part);
            long[] pad = [0, responses - logp.shape[1]];
            logps.Add(nn.functional.pad(logp, pad));
            entropies.Add(nn.functional.pad(entropy, pad));
            order.AddRange(bucket.Select(i => (long)i));
        }
        // back to the sequences' order: row i of the result is row inverse[i] of the buckets' rows
        var inverse = new long[n];
        for (var r = 0; r < n; r++) inverse[order[r]] = r;
        using var rows = tensor(inverse);
        var mask = tensor(valid, [n, responses]);
        return (cat(logps, 0).index_select(0, rows) * mask, tensor(infer, [n, responses]), mask,
            cat(entropies, 0).index_select(0, rows) * mask);
    }

    /// <summary>
    /// The sequences' indices sorted by length (prompt and response) and cut into at most <see cref="MaxBuckets"/>
    /// runs that minimise the padded tokens plus a fixed cost per forward (a small dynamic program over the cuts).
    /// </summary>
    internal static List<int[]> Buckets(IReadOnlyList<Sequence> sequences)
    {
        var sorted = Enumerable.Range(0, sequences.Count).OrderBy(i => sequences[i].Length).ToArray();
        var n = sorted.Length;
        // cost[k, j]: the first j sorted sequences in k forwards; a forward over (i, j] pads to the j-th's length
        var cost = new long[MaxBuckets + 1, n + 1];
        var cut = new int[MaxBuckets + 1, n + 1];
        for (var j = 1; j <= n; j++) cost[0, j] = long.MaxValue / 2;
        for (var k = 1; k <= MaxBuckets; k++)
            for (var j = 1; j <= n; j++)
            {
                cost[k, j] = long.MaxValue / 2;
                for (var i = k - 1; i < j; i++)
                {
                    var c = cost[k - 1, i] + (long)(j - i) * sequences[sorted[j - 1]].Length + ForwardCost;
                    if (c < cost[k, j]) (cost[k, j], cut[k, j]) = (c, i);
                }
            }
        var best = Enumerable.Range(1, Math.Min(MaxBuckets, n)).MinBy(k => cost[k, n]);
        var buckets = new List<int[]>();
        for (int k = best, j = n; k > 0; j = cut[k, j], k--) buckets.Insert(0, sorted[cut[k, j]..j]);
        return buckets;
    }

    /// <summary>One forward over <paramref name="sequences"/> padded to their longest: log π_train and entropy at
    /// each response token [n, T_b], T_b their longest response (padding rows hold junk the caller masks).</summary>
    private static (Tensor Logp, Tensor Entropy) ScoreBucket(CausalLanguageModel model,
        IReadOnlyList<Sequence> sequences, double temperature, bool entropyGradient)
    {
        var n = sequences.Count;
        // inputs drop the last token
        var longest = sequences.Max(s => s.Prompt.Count + s.Tokens.Count) - 1;
        var responses = sequences.Max(s => s.Tokens.Count);
        var inputs = new long[n * longest];
        var targets = new long[n * longest];
        var positions = new long[n * responses];
        for (var i = 0; i < n; i++)
        {
            var s = sequences[i];
            var all = s.Prompt.Concat(s.Tokens).ToArray();
            for (var t = 0; t < all.Length - 1; t++) (inputs[i * longest + t], targets[i * longest + t]) = (all[t],
                all[t + 1]);
            // the position whose logits predict response token t
            for (var t = 0; t < s.Tokens.Count; t++) positions[i * responses + t] = s.Prompt.Count - 1 + t;
        }
        // held for the call (TK0001)
        using var temperatureScalar = temperature.ToScalar();
        var logits = model.call(tensor(inputs, [n, longest])).to(ScalarType.Float32) / temperatureScalar;  // [n, L, V]
        var logp = nn.functional.log_softmax(logits, -1);                                                   // [n, L, V]
        var position = tensor(positions, [n, responses]);                                                   // [n, T]
        // [n, T]
        var tokenLogp = logp.gather(2, tensor(targets, [n, longest]).unsqueeze(-1)).squeeze(-1).gather(1, position);
        Tensor entropy;
        using (entropyGradient ? null : no_grad())
            entropy = (-(logp.exp() * logp).sum(-1)).gather(1, position);                                 // [n, T]
        return (tokenLogp, entropy);
    }

    /// <summary>1 [N, T] where a response token was generated by policy <paramref name="version"/> (0 elsewhere and
    /// on padding), in <see cref="Score"/>'s layout.</summary>
    public static Tensor GeneratedBy(IReadOnlyList<Sequence> sequences, int version)
    {
        var responses = sequences.Max(s => s.Tokens.Count);
        var mask = new float[sequences.Count * responses];
        for (var i = 0; i < sequences.Count; i++)
            for (var t = 0; t < sequences[i].Tokens.Count; t++)
                mask[i * responses + t] = sequences[i].Versions[t] == version ? 1 : 0;
        return tensor(mask, [sequences.Count, responses]);
    }

    /// <summary>
    /// Per layer, how many response tokens (those <paramref name="counted"/> accepts, by sequence and position; all by
    /// default) the trainer routed to another set of experts than the rollout engine did, read from the model's last
    /// forward, which must have been over exactly these sequences (<see cref="Score"/>'s <c>eachForward</c>): the
    /// quantity the IcePop authors argue drives the collapse. Empty for a dense model.
    /// </summary>
    public static long[] RoutingFlips(CausalLanguageModel model, IReadOnlyList<Sequence> sequences,
        Func<Sequence, int, bool>? counted = null)
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
                    if (counted is not null && !counted(sequences[i], t)) continue;
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
