using Toolkit.Generation;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Generation;

/// <summary>How a forward's prefill chunks are grouped to attend together: every chunk once, chunks of like length
/// together, a long one apart from many short ones, and each padded query's mask exactly its causal window.</summary>
public sealed class PrefillGroupTests
{
    public PrefillGroupTests() => TorchRuntime.EnsureInitialized();

    private static List<(int Row, Chunk Chunk)> Chunks(params (int Start, int Count)[] shapes)
    {
        var (chunks, row) = (new List<(int, Chunk)>(), 0);
        for (var slot = 0; slot < shapes.Length; slot++)
        {
            chunks.Add((row, new Chunk(slot, new long[shapes[slot].Count], shapes[slot].Start)));
            row += shapes[slot].Count;
        }
        return chunks;
    }

    [Fact]
    public void Plan_GroupsLikeLengths_AndKeepsALongChunkApart()
    {
        var shapes = Enumerable.Repeat((0, 8), 30).Append((0, 500)).ToArray();
        var groups = PrefillGroup.Plan(Chunks(shapes)).ToList();
        Assert.Equal(Enumerable.Range(0, 31), groups.SelectMany(g => g.Select(c => c.Chunk.Slot)).Order());
        Assert.Equal(2, groups.Count);
        // the long chunk's group pads at most twice its own attention: one short chunk may ride along, not more
        Assert.Equal(500, groups[0][0].Chunk.Tokens.Length);
        Assert.InRange(groups[0].Count, 1, 2);
        foreach (var g in groups)
        {
            var width = g.Max(c => c.Chunk.Tokens.Length);
            var length = g.Max(c => c.Chunk.Start + c.Chunk.Tokens.Length);
            var own = g.Sum(c => (long)c.Chunk.Tokens.Length * (c.Chunk.Start + c.Chunk.Tokens.Length));
            Assert.True((long)g.Count * width * length <= 2 * own + 64 * 64);
        }
        Assert.Single(PrefillGroup.Plan(Chunks([.. Enumerable.Repeat((0, 8), 30)])));
    }

    [Fact]
    public void Hidden_IsEachQuerysFuture_AndPaddedQueriesSeeTheirFirstPosition()
    {
        using var scope = NewDisposeScope();
        // slot 0: positions 2..4 (3 tokens after 2 cached); slot 1: positions 0..1
        var chunks = Chunks((2, 3), (0, 2));
        var group = new PrefillGroup(chunks, CPU);
        Assert.Equal(5, group.Length);
        Assert.Equal(new long[] { 2, 3, 5 }, group.Hidden.shape);
        var hidden = group.Hidden.data<bool>().ToArray();
        bool Sees(int chunk, int query, int key) => !hidden[(chunk * 3 + query) * 5 + key];
        for (var key = 0; key < 5; key++)
        {
            for (var q = 0; q < 3; q++) Assert.Equal(key <= 2 + q, Sees(0, q, key));
            for (var q = 0; q < 2; q++) Assert.Equal(key <= q, Sees(1, q, key));
            Assert.Equal(key == 0, Sees(1, 2, key));                     // slot 1's padded third query
        }
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 3 }, group.QueryRows.data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, group.Valid.data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, group.Rows.data<long>().ToArray());
    }
}
