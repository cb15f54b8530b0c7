using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// Prefill chunks of one forward that attend together: each chunk's queries padded to the group's longest chunk, each
/// over its slot's cache up to the group's furthest position, in one batched product per layer instead of one per
/// chunk. On a CPU the small per-chunk products cost mostly dispatch, so batching them is what makes a step that
/// resumes a whole pool of sequences (C3PO++ after a weight sync) cheap.
/// </summary>
internal sealed class PrefillGroup
{
    /// <summary>Padded elements allowed beyond twice the chunks' own attention elements, so that small chunks always
    /// group.</summary>
    private const long Slack = 64 * 64;

    public PrefillGroup(IReadOnlyList<(int Row, Chunk Chunk)> chunks, Device device)
    {
        var width = chunks.Max(c => c.Chunk.Tokens.Length);
        Length = chunks.Max(c => c.Chunk.Start + c.Chunk.Tokens.Length);
        var (queryRows, valid, rows) = (new long[chunks.Count * width], new List<long>(), new List<long>());
        var hidden = new bool[chunks.Count * width * Length];
        for (var p = 0; p < chunks.Count; p++)
        {
            var (row, chunk) = chunks[p];
            for (var j = 0; j < width; j++)
            {
                var inside = j < chunk.Tokens.Length;
                var flat = p * width + j;
                queryRows[flat] = row + (inside ? j : 0);
                if (inside)
                {
                    valid.Add(flat);
                    rows.Add(row + j);
                }
                // a padded query sees its chunk's first position, so its (discarded) softmax stays finite
                var sees = chunk.Start + (inside ? j : 0);
                for (var l = sees + 1; l < Length; l++) hidden[flat * Length + l] = true;
            }
        }
        Slots = tensor(chunks.Select(c => (long)c.Chunk.Slot).ToArray(), device: device);
        QueryRows = tensor(queryRows, device: device);
        Valid = tensor(valid.ToArray(), device: device);
        Rows = tensor(rows.ToArray(), device: device);
        Hidden = tensor(hidden, device: device).view(chunks.Count, width, Length);
    }

    /// <summary>Each chunk's slot [P].</summary>
    public Tensor Slots { get; }

    /// <summary>The batch row each padded query reads [P·n] (a padded query reads its chunk's first row).</summary>
    public Tensor QueryRows { get; }

    /// <summary>Which padded queries are real [M], as indices into P·n, in the order of <see cref="Rows"/>.</summary>
    public Tensor Valid { get; }

    /// <summary>The batch row of each real query [M].</summary>
    public Tensor Rows { get; }

    /// <summary>Cache positions each padded query must not see [P, n, L].</summary>
    public Tensor Hidden { get; }

    /// <summary>Cache positions the group reads, L.</summary>
    public int Length { get; }

    /// <summary>
    /// Groups the chunks so that padding costs at most about twice their own attention: by furthest position, longest
    /// first, a chunk joins the current group while the group's padded size P·n·L stays within twice the sum of its
    /// chunks' n·L (plus a small slack).
    /// </summary>
    public static IEnumerable<List<(int Row, Chunk Chunk)>> Plan(IReadOnlyList<(int Row, Chunk Chunk)> chunks)
    {
        var group = new List<(int Row, Chunk Chunk)>();
        long own = 0;
        int width = 0, length = 0;
        foreach (var c in chunks.OrderByDescending(c => c.Chunk.Start + c.Chunk.Tokens.Length))
        {
            var (n, end) = (c.Chunk.Tokens.Length, c.Chunk.Start + c.Chunk.Tokens.Length);
            var (w, l, o) = (Math.Max(width, n), Math.Max(length, end), own + (long)n * end);
            if (group.Count > 0 && (long)(group.Count + 1) * w * l > 2 * o + Slack)
            {
                yield return group;
                (group, own, width, length) = ([], 0, 0, 0);
                (w, l, o) = (n, end, (long)n * end);
            }
            group.Add(c);
            (width, length, own) = (w, l, o);
        }
        if (group.Count > 0) yield return group;
    }
}
