using Toolkit.Comm;
using Toolkit.Paro;
using TorchSharp;

namespace Toolkit.Tests.Comm;

/// <summary>
/// The communicator's group layout is built once and read by everything: sub-communicators for roles (trainer ranks,
/// rollout ranks) keep the world's intra/inter classification of every byte, and PaRO refuses a plan whose group size
/// is not the communicator's.
/// </summary>
public sealed class GroupLayoutTests
{
    [Fact]
    public void RoleSplit_AcrossGroups_CountsEveryByteAsInterGroup_AndSeesOneRankPerGroup()
    {
        // World of 4 in groups of 2; roles by rank parity: {0, 2} and {1, 3}, each spanning both groups.
        var results = InProcessCluster.Run(4, 2, comm =>
        {
            using var role = comm.Split(comm.Rank % 2, comm.Rank);
            var before = comm.Counters.Snapshot();
            var data = Enumerable.Repeat((float)comm.Rank, 1000).ToArray();
            role.AllReduce<float>(data);
            var traffic = comm.Counters.Snapshot().Since(before);
            return (role.Groups.G, role.Groups.M, traffic.IntraBytes, traffic.InterBytes, Sum: data[0]);
        });
        Assert.All(results, r => Assert.Equal((2, 1, 0L), (r.G, r.M, r.IntraBytes)));
        // ring of 2: reduce-scatter + all-gather, half a buffer each
        Assert.All(results, r => Assert.Equal(2 * 500 * 4L, r.InterBytes));
        Assert.Equal([2f, 4f, 2f, 4f], results.Select(r => r.Sum));
    }

    [Fact]
    public void RoleSplit_WithinGroups_CountsEveryByteAsIntraGroup()
    {
        var results = InProcessCluster.Run(4, 2, comm =>
        {
            using var role = comm.Split(comm.Rank / 2, comm.Rank);
            var before = comm.Counters.Snapshot();
            var data = new float[1000];
            role.AllReduce<float>(data);
            var traffic = comm.Counters.Snapshot().Since(before);
            return (role.Groups.G, role.Groups.M, traffic.IntraBytes, traffic.InterBytes);
        });
        Assert.All(results, r => Assert.Equal((1, 2, 4000L, 0L), r));
    }

    [Fact]
    public void Layout_IsBuiltOnce_AndMatchesTheWorldsGroups()
    {
        var results = InProcessCluster.Run(6, 3, comm => (Same: ReferenceEquals(comm.Groups, comm.Groups),
            comm.Groups.G, comm.Groups.M, comm.Groups.Local, comm.Groups.Group,
            IntraRanks: comm.Groups.Intra.WorldRanks.ToArray(), InterRanks: comm.Groups.Inter.WorldRanks.ToArray()));
        for (var r = 0; r < 6; r++)
        {
            Assert.True(results[r].Same);
            Assert.Equal((2, 3, r % 3, r / 3), (results[r].G, results[r].M, results[r].Local, results[r].Group));
            Assert.Equal(Enumerable.Range(r / 3 * 3, 3), results[r].IntraRanks);
            Assert.Equal([r % 3, r % 3 + 3], results[r].InterRanks);
        }
    }

    [Fact]
    public void ShardedTrainer_RefusesAPlanWhoseGroupSizeIsNotTheCommunicators()
    {
        Toolkit.Runtime.TorchRuntime.EnsureInitialized();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => InProcessCluster.Run(4, 2, comm =>
        {
            using var model = torch.nn.Linear(3, 2);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse("NIG"),
                GroupSize: 4), comm);
            return 0;
        }));
        Assert.Contains("must equal the communicator's group size", e.Message);
        Assert.Contains("2 group(s) of 2", e.Message);
    }
}

/// <summary>
/// Parameters the loss does not reach (an expert no token chose) have no autograd gradient; the sharded trainer treats
/// it as zero, so AdamW's first step only decays them (p·(1 − lr·λ)), while the experts the tokens chose move.
/// </summary>
public sealed class UnusedParameterTests
{
    [Fact]
    public void ShardedTrainer_DecaysUnusedExperts_AndMovesTheChosenOnes()
    {
        Toolkit.Runtime.TorchRuntime.EnsureInitialized();
        var adam = new AdamWOptions { LearningRate = 0.01, WeightDecay = 0.1 };
        var results = InProcessCluster.Run(2, 1, comm =>
        {
            using var model = Toolkit.Models.Gpt.Create(Toolkit.Models.GptConfig.Tiny.WithExperts(8, topK: 1), seed: 1);
            var names = model.named_parameters().Select(p => (p.name, Count: (int)p.parameter.numel())).ToList();
            float[] before;
            using (TorchSharp.torch.NewDisposeScope())
                before = [.. model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray())];
            foreach (var layer in model.ExpertLayers) layer.RecordRouting = true;
            var plan = new ShardingPlan(ShardingStrategy.Parse("NIG"), 1);
            using var trainer = ShardedTrainer.Create(model, plan, comm, adam);
            int[][] chosen = [];
            // Two tokens reach at most two of the eight experts per block.
            trainer.Step([m =>
            {
                var gpt = (Toolkit.Models.Gpt)m;
                using var tokens = torch.tensor(new long[] { 1, 2 }).unsqueeze(0);
                using var targets = torch.tensor(new long[] { 2, 3 }).unsqueeze(0);
                var loss = gpt.Loss(tokens, targets);
                chosen = [.. gpt.ExpertLayers.Select(l => l.LastRouting!.data<long>().Select(v => (int)v).Distinct()
                    .ToArray())];
                return loss;
            }]);
            return (names, before, After: trainer.GatherParameters(), chosen);
        });
        var (names, before, after, chosen) = results[0];
        var decay = (float)(1 - adam.LearningRate * adam.WeightDecay);
        var (unused, moved) = (0, 0);
        var offset = 0;
        foreach (var (name, count) in names)
        {
            var match = System.Text.RegularExpressions.Regex.Match(name, @"^h\.(\d+)\.mlp\.experts\.(\d+)\.");
            if (match.Success)
            {
                var used = chosen[int.Parse(match.Groups[1].Value)].Contains(int.Parse(match.Groups[2].Value));
                var change = Enumerable.Range(offset, count).Max(i => Math.Abs(after[i] - before[i] * decay));
                if (used && name.EndsWith("c_fc.weight", StringComparison.Ordinal)) { Assert.True(change > 1e-4,
                    $"{name} did not move"); moved++; }
                if (!used) { Assert.True(change < 1e-7, $"{name}: {change}"); unused++; }
            }
            offset += count;
        }
        Assert.True(unused > 0 && moved > 0, $"{unused} unused and {moved} chosen expert tensors checked");
        Assert.Equal(results[0].After, results[1].After);
    }
}
