using Toolkit.Comm;

namespace Toolkit.Tests.Comm;

/// <summary>
/// The reference for <see cref="CollectiveProbe"/>: what every rank must hold after each case, and exactly how many
/// bytes it must have sent intra- and inter-group, computed here independently of the implementation (ring:
/// reduce-scatter sends every shard but the rank's own, all-gather every shard but the next rank's, both to the next
/// rank).
/// </summary>
internal static class ProbeReference
{
    /// <param name="perRank">Each rank's records.</param>
    /// <param name="n">Ranks.</param>
    /// <param name="m">Group size.</param>
    /// <param name="checkBytes">Whether to check the ring's byte counts (true for ring and native; the hierarchical
    /// algorithms move different amounts, checked by their own tests).</param>
    public static void Check(IReadOnlyList<List<ProbeRecord>> perRank, int n, int m, bool checkBytes = true)
    {
        Assert.Equal(n, perRank.Count);
        var byCase = perRank.SelectMany(r => r).GroupBy(r => (r.Case, r.Type, r.Length));
        var checkedCases = 0;
        foreach (var group in byCase)
        {
            var records = group.OrderBy(r => r.WorldRank).ToList();
            Assert.Equal(n, records.Count);
            foreach (var record in records) CheckRecord(record, n, m, checkBytes);
            checkedCases++;
        }
        Assert.Equal(CollectiveProbe.Types.Length * CollectiveProbe.Lengths.Length * 5 + 3, checkedCases);
    }

    private static void CheckRecord(ProbeRecord r, int n, int m, bool checkBytes)
    {
        var elementSize = r.Type switch { "float32" or "int32" => 4, "bfloat16" => 2, _ => 8 };
        var (members, position) = Members(r.Case, r.WorldRank, n, m);
        var k = members.Count;
        var (shardOffset, shardCount) = Communicator.ShardRange(r.Length, k, position);
        for (var i = 0; i < r.Length; i++)
        {
            double expected = r.Case switch
            {
                "allreduce_sum" or "within_groups_allreduce" or "across_groups_allreduce" => members.Sum(w
                    => CollectiveProbe.Input(w, i)),
                "allreduce_max" => members.Max(w => CollectiveProbe.Input(w, i)),
                "reduce_scatter" => i >= shardOffset && i < shardOffset + shardCount ? members.Sum(w
                    => CollectiveProbe.Input(w, i)) : double.NaN,
                "all_gather" => CollectiveProbe.Input(members[Owner(r.Length, k, i)], i),
                "broadcast" => CollectiveProbe.Input(members[1 % k], i),
                "send_ring" => CollectiveProbe.Input(members[(position - 1 + k) % k], i),
                _ => throw new InvalidOperationException(r.Case),
            };
            if (!double.IsNaN(expected))
                Assert.True(expected == r.Values[i],
                    $"{r.Case} {r.Type} length {r.Length} rank {r.WorldRank} element {i}: expected {expected}, " +
                        $"got {r.Values[i]}");
        }
        if (!checkBytes) return;
        var (intra, inter) = ExpectedBytes(r.Case, r.Length, elementSize, members, position, m);
        Assert.True(intra == r.IntraBytes && inter == r.InterBytes,
            $"{r.Case} {r.Type} length {r.Length} rank {r.WorldRank}: expected intra/inter {intra}/{inter} bytes, " +
                $"counted {r.IntraBytes}/{r.InterBytes}");
    }

    private static (List<int> Members, int Position) Members(string name, int world, int n, int m)
    {
        var members = name switch
        {
            "within_groups_allreduce" => Enumerable.Range(world / m * m, m).ToList(),
            "across_groups_allreduce" => Enumerable.Range(0, n).Where(w => w % m == world % m).ToList(),
            _ => Enumerable.Range(0, n).ToList(),
        };
        return (members, members.IndexOf(world));
    }

    private static int Owner(int length, int parts, int index) =>
        Enumerable.Range(0, parts).First(p => { var (o, c) = Communicator.ShardRange(length, parts,
            p); return index >= o && index < o + c; });

    private static (long Intra, long Inter) ExpectedBytes(string name, int length, int elementSize, List<int> members,
        int position, int m)
    {
        var k = members.Count;
        if (k == 1) return (0, 0);
        int Count(int p) => Communicator.ShardRange(length, k, ((p % k) + k) % k).Count;
        long elements = name switch
        {
            "reduce_scatter" => length - Count(position),
            "all_gather" => length - Count(position + 1),
            // root is position 1; the last in the chain sends nothing
            "broadcast" => (position - 1 + k) % k == k - 1 ? 0 : length,
            "send_ring" => length,
            _ => (length - Count(position)) + (length - Count(position + 1)),
        };
        var next = members[(position + 1) % k];
        var intra = next / m == members[position] / m;
        return intra ? (elements * elementSize, 0) : (0, elements * elementSize);
    }
}
