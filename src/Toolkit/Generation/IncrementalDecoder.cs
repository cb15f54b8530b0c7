using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>Tokens fed to one slot in one forward: a prompt (prefill) or the one token sampled last (decode).</summary>
/// <param name="Slot">The slot whose cache the tokens extend.</param>
/// <param name="Tokens">The tokens, at positions <paramref name="Start"/>, Start + 1, ...</param>
/// <param name="Start">Position of the first token (the slot's cache holds positions before it).</param>
internal readonly record struct Chunk(int Slot, long[] Tokens, int Start);

/// <summary>
/// The part of an incremental forward every family shares: a KV cache over a fixed pool of slots and attention over it.
/// One forward takes any mix of chunks (continuous batching: a sequence joins with its whole prompt in one chunk,
/// gpt-fast's prefill, while the others decode one token each); the projections run on all rows at once, decode rows
/// (and the rows of chunks up to <see cref="RowChunk"/> tokens) attend together over their slots' caches, and
/// longer prefill chunks attend causally over their slots' caches in groups of similar lengths
/// (<see cref="PrefillGroup"/>).
/// </summary>
internal abstract class IncrementalDecoder : IDisposable
{
    /// <summary>Longest chunk whose rows attend one by one, as decode rows do (a short prompt joining beside the
    /// decodes costs a few more rows instead of a product of its own); longer chunks attend in
    /// <see cref="PrefillGroup"/>s.</summary>
    internal const int RowChunk = 8;

    private readonly Tensor[] _keys;     // per layer [S, T, kv, d]
    private readonly Tensor[] _values;   // per layer [S, T, kv, d]
    private readonly Scalar _scale;
    private readonly Scalar _negativeInfinity = float.NegativeInfinity.ToScalar();

    protected IncrementalDecoder(EngineWeights weights, int slots, int context, int layers, int heads, int kvHeads,
        int headDim)
    {
        (W, Slots, Context, Heads, KvHeads, HeadDim) = (weights, slots, context, heads, kvHeads, headDim);
        _scale = (1.0 / Math.Sqrt(headDim)).ToScalar();
        long[] shape = [slots, context, kvHeads, headDim];
        _keys = [.. Enumerable.Range(0, layers).Select(_ => zeros(shape, dtype: weights.ComputeType,
            device: weights.Device))];
        _values = [.. Enumerable.Range(0, layers).Select(_ => zeros(shape, dtype: weights.ComputeType,
            device: weights.Device))];
    }

    protected EngineWeights W { get; private set; }

    /// <summary>Decodes with <paramref name="weights"/> from now on, keeping the cache (an in-flight weight update:
    /// cached keys and values stay those of the weights that computed them).</summary>
    /// <exception cref="ArgumentException">Weights of another model, compute type or device.</exception>
    public void Swap(EngineWeights weights)
    {
        if (!weights.Config.Equals(W.Config) || weights.ComputeType != W.ComputeType || weights.Device != W.Device)
            throw new ArgumentException("The new weights are not the same model in the same numerics.",
                nameof(weights));
        W = weights;
    }
    public int Slots { get; }
    public int Context { get; }
    protected int Heads { get; }
    protected int KvHeads { get; }
    protected int HeadDim { get; }

    /// <summary>For a mixture-of-experts model: per expert layer, the sorted experts each chunk's last row chose; else
    /// empty.</summary>
    public int[][][] LastRouting { get; private set; } = [];

    private readonly List<int[][]> _routing = [];

    /// <summary>Feeds the chunks; returns fp32 logits [C, V] at each chunk's last token.</summary>
    public Tensor Forward(IReadOnlyList<Chunk> chunks)
    {
        using var scope = NewDisposeScope();
        var batch = new Batch(chunks, Context, Slots, W.Device);
        _routing.Clear();
        var logits = Run(batch).to(ScalarType.Float32).MoveToOuterDisposeScope();
        LastRouting = [.. _routing];
        return logits;
    }

    /// <summary>An expert layer's choice [N, k] (in layer order): the sorted experts of each chunk's last row go into
    /// <see cref="LastRouting"/>.</summary>
    protected void RecordRouting(Tensor chosen, Batch batch)
    {
        using var last = chosen.index_select(0, batch.LastRows);
        var k = (int)last.shape[1];
        var flat = last.sort(-1).Values.cpu().data<long>().ToArray();
        _routing.Add([.. Enumerable.Range(0, (int)last.shape[0])
            .Select(r => flat.Skip(r * k).Take(k).Select(v => (int)v).ToArray())]);
    }

    /// <summary>The family's forward over the batch's rows; returns logits [C, V] at
    /// <see cref="Batch.LastRows"/>.</summary>
    protected abstract Tensor Run(Batch batch);

    /// <summary>
    /// Attention of one layer: writes the rows' keys and values into their slots' caches, then returns each row's
    /// output [N, heads·d] from q [N, heads, d] over its slot's positions up to its own.
    /// </summary>
    protected Tensor Attend(int layer, Tensor q, Tensor k, Tensor v, Batch batch)
    {
        var (cacheK, cacheV) = (_keys[layer], _values[layer]);
        cacheK.view(-1, KvHeads, HeadDim).index_copy_(0, batch.CacheRows, k);
        cacheV.view(-1, KvHeads, HeadDim).index_copy_(0, batch.CacheRows, v);
        var groups = Heads / KvHeads;
        var output = zeros_like(q);                                                   // [N, h, d]
        if (batch.DecodeRows is { } rows)
        {
            var length = batch.DecodeLength;
            var keys = cacheK.narrow(1, 0, length);                                   // [S, L, kv, d]
            var values = cacheV.narrow(1, 0, length);
            if (!batch.DecodesEverySlotInOrder) (keys, values) = (keys.index_select(0, batch.DecodeSlots!),
                values.index_select(0, batch.DecodeSlots!));
            var query = q.index_select(0, rows).view(-1, KvHeads, groups, HeadDim);   // [A, kv, g, d]
            var scores = einsum("akgd,alkd->akgl", query, keys).mul(_scale);          // [A, kv, g, L]
            scores = scores.masked_fill(batch.DecodeHidden!.view(-1, 1, 1, length), _negativeInfinity);
            var attended = einsum("akgl,alkd->akgd", nn.functional.softmax(scores, -1), values);   // [A, kv, g, d]
            output.index_copy_(0, rows, attended.reshape(-1, Heads, HeadDim));
        }
        foreach (var group in batch.PrefillGroups)
        {
            // chunks padded to the group's longest, attending together: [P, n, kv, g, d] over [P, L, kv, d]
            var (count, length) = (group.Slots.shape[0], group.Length);
            var keys = cacheK.narrow(1, 0, length).index_select(0, group.Slots);       // [P, L, kv, d]
            var values = cacheV.narrow(1, 0, length).index_select(0, group.Slots);
            var query = q.index_select(0, group.QueryRows).view(count, -1, KvHeads, groups, HeadDim);
            var scores = einsum("pnkgd,plkd->pnkgl", query, keys).mul(_scale);           // [P, n, kv, g, L]
            scores = scores.masked_fill(group.Hidden.unsqueeze(2).unsqueeze(2), _negativeInfinity);
            var attended = einsum("pnkgl,plkd->pnkgd", nn.functional.softmax(scores, -1), values);
            output.index_copy_(0, group.Rows, attended.reshape(-1, Heads, HeadDim).index_select(0, group.Valid));
        }
        return output.view(-1, Heads * HeadDim);                                      // [N, h·d]
    }

    /// <summary>The rows of one forward: every chunk's tokens in order, their positions and cache rows, and how they
    /// attend (built once, read by every layer).</summary>
    protected sealed class Batch
    {
        public Batch(IReadOnlyList<Chunk> chunks, int context, int slots, Device device)
        {
            var tokens = chunks.SelectMany(c => c.Tokens).ToArray();
            var positions = chunks.SelectMany(c => Enumerable.Range(c.Start,
                c.Tokens.Length).Select(p => (long)p)).ToArray();
            var cacheRows = chunks.SelectMany(c => Enumerable.Range(c.Start,
                c.Tokens.Length).Select(p => (long)c.Slot * context + p)).ToArray();
            var ends = new long[chunks.Count];
            var (decodeRows, decodeSlots, decodePositions, prefills) = (new List<long>(), new List<long>(),
                new List<long>(), new List<(int Row, Chunk Chunk)>());
            var row = 0;
            for (var c = 0; c < chunks.Count; c++)
            {
                var chunk = chunks[c];
                if (chunk.Tokens.Length <= RowChunk)
                    for (var j = 0; j < chunk.Tokens.Length; j++)
                    {
                        decodeRows.Add(row + j);
                        decodeSlots.Add(chunk.Slot);
                        decodePositions.Add(chunk.Start + j);
                    }
                else prefills.Add((row, chunk));
                row += chunk.Tokens.Length;
                ends[c] = row - 1;
            }
            Tokens = tensor(tokens, device: device);
            Positions = tensor(positions, device: device);
            CacheRows = tensor(cacheRows, device: device);
            LastRows = tensor(ends, device: device);
            PrefillGroups = [.. PrefillGroup.Plan(prefills).Select(g => new PrefillGroup(g, device))];
            if (decodeRows.Count == 0) return;
            DecodeRows = tensor(decodeRows.ToArray(), device: device);
            DecodeSlots = tensor(decodeSlots.ToArray(), device: device);
            DecodesEverySlotInOrder = decodeSlots.Count == slots && decodeSlots.Select((s, i) => s == i).All(b => b);
            DecodeLength = (int)decodePositions.Max() + 1;
            using var length = ((long)DecodeLength).ToScalar();                       // held for the call (TK0001)
            // [A, L]
            DecodeHidden = arange(length, device: device).unsqueeze(0) > tensor(decodePositions.ToArray(),
                device: device).unsqueeze(1);
        }

        /// <summary>Token ids [N].</summary>
        public Tensor Tokens { get; }
        /// <summary>Positions [N].</summary>
        public Tensor Positions { get; }
        /// <summary>Rows of the flattened [S·T] cache each row writes [N].</summary>
        public Tensor CacheRows { get; }
        /// <summary>The last row of each chunk [C]: where logits are needed.</summary>
        public Tensor LastRows { get; }
        /// <summary>Rows that attend one by one [A] (decodes and the rows of short chunks), their slots [A], and the
        /// future positions each must not see [A, L].</summary>
        public Tensor? DecodeRows { get; }
        public Tensor? DecodeSlots { get; }
        public Tensor? DecodeHidden { get; }
        /// <summary>Longest cache prefix a decode row reads.</summary>
        public int DecodeLength { get; }
        /// <summary>The prefill chunks, in groups that attend in one batched product each.</summary>
        public IReadOnlyList<PrefillGroup> PrefillGroups { get; }

        /// <summary>True when the decode rows are slots 0..S−1 in order, so the caches are read as they are (no
        /// gather).</summary>
        public bool DecodesEverySlotInOrder { get; }
    }

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values)) t.Dispose();
        _scale.Dispose();
        _negativeInfinity.Dispose();
    }
}
