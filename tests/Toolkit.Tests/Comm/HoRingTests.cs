using Toolkit.Comm;

namespace Toolkit.Tests.Comm;

/// <summary>
/// HO-Ring and the leader-based hierarchical all-reduce against the flat ring: identical results (inputs are small
/// integers, so sums are exact in any order), the pipelined path exercised with small chunks, and the exact bytes each
/// rank sends inside and across groups.
/// </summary>
public sealed class HoRingTests
{
    public static TheoryData<int, int, int, string> Cases() => new()
    {
        { 4, 2, 10_007, "float32" }, { 6, 2, 10_007, "float32" }, { 6, 3, 4_099, "bfloat16" }, { 8, 4, 333,
            "float32" }, { 8, 2, 50_000, "bfloat16" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void PipelinedHoRing_And_Hierarchical_EqualTheFlatRing(int n, int m, int length, string type)
    {
        var ring = Run(n, m, length, type, CollectiveAlgorithm.Ring);
        foreach (var (algorithm, pipeline) in new[] { (CollectiveAlgorithm.HoRing, HoRingPipeline.On),
            (CollectiveAlgorithm.HoRing, HoRingPipeline.Off), (CollectiveAlgorithm.Hierarchical, HoRingPipeline.Auto) })
        {
            var other = Run(n, m, length, type, algorithm, pipeline);
            for (var r = 0; r < n; r++)
                Assert.True(ring[r].Values.SequenceEqual(other[r].Values),
                    $"{algorithm} ({pipeline}) differs from the ring on rank {r}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PipelinedHoRing_SendsExactlyTheModelsBytes(int n, int m, int length, string type)
    {
        var size = type == "float32" ? 4 : 2;
        var results = Run(n, m, length, type, CollectiveAlgorithm.HoRing);
        var chunks = HoRing.Chunks((long)length * size, ChunkBytes, length);
        Assert.True(chunks > 1 || length * size < 2 * ChunkBytes, "the pipelined path must be exercised");
        var g = n / m;
        for (var r = 0; r < n; r++)
        {
            int local = r % m, group = r / m;
            long intra = 0, inter = 0;
            for (var c = 0; c < chunks; c++)
            {
                var chunk = Communicator.ShardRange(length, chunks, c).Count;
                intra += 2L * chunk - Communicator.ShardRange(chunk, m, local).Count - Communicator.ShardRange(chunk,
                    m, (local + 1) % m).Count;
                var slice = Communicator.ShardRange(chunk, m, local).Count;
                inter += 2L * slice - Communicator.ShardRange(slice, g, group).Count - Communicator.ShardRange(slice,
                    g, (group + 1) % g).Count;
            }
            Assert.Equal(intra * size, results[r].IntraBytes);
            Assert.Equal(inter * size, results[r].InterBytes);
        }
        var flat = Run(n, m, length, type, CollectiveAlgorithm.Ring);
        Assert.True(results.Max(x => x.InterBytes) < flat.Max(x => x.InterBytes),
            "HO-Ring must cross groups less than the flat ring");
    }

    [Fact]
    public void LeaderHierarchical_SendsTheLeadersWholeBufferAcrossGroups()
    {
        const int n = 4, m = 2, length = 1000;
        var results = Run(n, m, length, "float32", CollectiveAlgorithm.Hierarchical);
        // Leaders (local 0) run a ring over g = 2 leaders on the whole buffer: 2(g-1)/g * S across groups; the others
        // send nothing across.
        Assert.Equal(length * 4L, results[0].InterBytes);
        Assert.Equal(0, results[1].InterBytes);
        Assert.Equal(length * 4L, results[2].InterBytes);
    }

    private const int ChunkBytes = 4096;

    [Fact]
    public void UnpipelinedHoRing_SendsTheAuthorsBytes_AndTimesItsPhases()
    {
        const int n = 4, m = 2, g = 2, length = 10_007;
        var results = Run(n, m, length, "float32", CollectiveAlgorithm.HoRing, HoRingPipeline.Off);
        for (var r = 0; r < n; r++)
        {
            int local = r % m, group = r / m;
            var slice = Communicator.ShardRange(length, m, local).Count;
            Assert.Equal((2L * length - slice - Communicator.ShardRange(length, m, (local + 1) % m).Count) * 4,
                results[r].IntraBytes);
            Assert.Equal((2L * slice - Communicator.ShardRange(slice, g, group).Count - Communicator.ShardRange(slice,
                g, (group + 1) % g).Count) * 4, results[r].InterBytes);
            Assert.Equal([HoRing.PhaseInterAllReduce, HoRing.PhaseIntraAllGather, HoRing.PhaseIntraReduceScatter],
                results[r].Phases.Order());
        }
    }

    [Fact]
    public void AutoPipeline_InProcess_NeedsACoreForEveryStageThread()
    {
        var pipelines = InProcessCluster.Run(4, 2, comm => comm.Pipelines);
        Assert.All(pipelines, p => Assert.Equal(Environment.ProcessorCount >= 12, p));
        Assert.All(InProcessCluster.Run(4, 2, comm => { comm.Pipeline = HoRingPipeline.On; return comm.Pipelines; }),
            Assert.True);
    }

    private static (double[] Values, long IntraBytes, long InterBytes, IReadOnlyList<string> Phases)[] Run(int n,
        int m, int length, string type, CollectiveAlgorithm algorithm,
        HoRingPipeline pipeline = HoRingPipeline.On) =>
        InProcessCluster.Run(n, m, comm =>
        {
            comm.Algorithm = algorithm;
            comm.Pipeline = pipeline;
            comm.PipelineChunkBytes = ChunkBytes;
            double Input(int i) => (comm.Rank + 1) * (i % 5 + 1) + i % 3;
            var before = comm.Counters.Snapshot();
            double[] values;
            if (type == "float32")
            {
                var data = Enumerable.Range(0, length).Select(i => (float)Input(i)).ToArray();
                comm.AllReduce<float>(data);
                values = data.Select(v => (double)v).ToArray();
            }
            else
            {
                var data = Enumerable.Range(0, length).Select(i => (BFloat16)(float)Input(i)).ToArray();
                comm.AllReduce<BFloat16>(data);
                values = data.Select(v => (double)(float)v).ToArray();
            }
            var traffic = comm.Counters.Snapshot().Since(before);
            return (values, traffic.IntraBytes, traffic.InterBytes,
                (IReadOnlyList<string>)[.. comm.Counters.Times().Keys]);
        });

    [Fact]
    public void PipelinedHoRing_WhenAnotherRankFails_ReportsThatFailure_NotItsOwnCancellation()
    {
        // Ranks 0-2 wait inside the pipelined HO-Ring for rank 3, which fails; their stage threads see only
        // cancellations. The job must report rank 3's failure (an earlier version threw "Sequence contains
        // no matching element" from rank 0, hiding it).
        var e = Assert.Throws<InvalidDataException>(() => InProcessCluster.Run(4, 2, comm =>
        {
            comm.Algorithm = CollectiveAlgorithm.HoRing;
            comm.Pipeline = HoRingPipeline.On;
            comm.PipelineChunkBytes = 4096;
            var data = new float[1 << 16];
            if (comm.Rank == 3)
            {
                _ = comm.Groups;          // the layout is collective: every rank builds it
                Thread.Sleep(200);
                throw new InvalidDataException("rank 3 failed");
            }
            comm.AllReduce<float>(data);
            return 0;
        }));
        Assert.Equal("rank 3 failed", e.Message);
    }
}
