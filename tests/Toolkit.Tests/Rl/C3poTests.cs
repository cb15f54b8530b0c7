using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Rl;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Rl;

/// <summary>
/// C3PO++'s invariants on a real engine: every response is trained on once, purged, or still in the pool (none lost,
/// none twice); each iteration stops at the budget; no trained token is staler than σ; the tokens of a resumed
/// response keep the versions that generated them.
/// </summary>
public sealed class C3poTests
{
    // Four tokens, token 3 the stop: with random weights responses stop after about four tokens, a few run to the
    // limit.
    private static readonly GptConfig Config = new(VocabularySize: 4, ContextLength: 32, Layers: 1, Heads: 2,
        Embedding: 16);

    public C3poTests() => TorchRuntime.EnsureInitialized();

    /// <summary>Also in flight (<c>--inflight-update</c>): carried responses stay in the engine, so no prefix
    /// but a prompt is ever fed.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryResponse_IsTrainedOnce_PurgedOrInThePool_WithinBudgetAndStaleness(bool inflight)
    {
        const int staleness = 1, budget = 40, groupSize = 2;
        using var engine = new GenerationEngine(Config, Numerics.Fp32, slots: 8, new SamplingOptions(),
            stopTokens: [3], maxTokens: 14, seed: 9);
        var problems = Enumerable.Range(0, 50).Select(i => new Problem($"{(char)(i % 3)}{(char)((i / 3) % 3)}",
            "")).ToList();
        var c3po = new C3poPartitioner(engine, new PromptStream(problems, seed: 1), groupSize, budget, staleness,
            inflight);
        var (prefix, total) = (0L, 0L);
        var trained = new HashSet<long>();
        var purged = 0;
        var resumedWithTwoVersions = 0;
        for (var version = 1; version <= 8; version++)
        {
            using (var model = Gpt.Create(Config, version)) engine.LoadWeights(Flat(model), version, inflight);
            var batch = c3po.Next();
            prefix += batch.PrefixTokens;
            total += batch.CompletedTokens;
            Assert.True(total >= version * budget, $"iteration {version}: {total} tokens in all < budget");
            Assert.True(batch.CompletedTokens < budget + engine.Slots * 14,
                "the iteration ran past the step that reached the budget");
            purged += batch.Purged;
            foreach (var group in batch.Groups)
            {
                Assert.Equal(groupSize, group.Samples.Count);
                foreach (var s in group.Samples)
                {
                    Assert.True(trained.Add(s.Id), $"response {s.Id} trained twice");
                    Assert.True(s.IsFinished);
                    Assert.True(s.Versions.Zip(s.Versions.Skip(1)).All(p => p.First <= p.Second),
                        "versions must not decrease");
                    Assert.True(version - s.Versions.Min() <= staleness,
                        $"response {s.Id}: a token of version {s.Versions.Min()} trained at {version}");
                    if (s.Versions.Distinct().Count() > 1) resumedWithTwoVersions++;
                }
            }
            Assert.Equal(c3po.Opened, trained.Count + purged + c3po.InPool);
        }
        Assert.True(resumedWithTwoVersions > 0, "no response was carried over and resumed");
        Assert.Equal(purged, c3po.PurgedTotal);
        // every prompt has two tokens, one of them fed as a prefix; a re-fed response would feed more
        if (inflight) Assert.True(prefix <= c3po.Opened, $"{prefix} prefix tokens for {c3po.Opened} responses");
        else Assert.True(prefix > c3po.Opened, $"{prefix} prefix tokens: no carried response was fed again");
    }

    /// <summary>With σ too large to force any group, n iterations train nΦ tokens and less than one group more:
    /// groups completing after an iteration's target wait for the next, which trains them first; a saved pool keeps
    /// the waiting groups and the tokens trained ahead of Φ, and a restored one trains the waiting groups
    /// first.</summary>
    [Fact]
    public void Iterations_TrainTheBudgetOnAverage_WithinOneGroup_AndTheWaitingGroupsGoFirst_AlsoAfterARestore()
    {
        const int budget = 40, groupSize = 2;
        var problems = Enumerable.Range(0, 50).Select(i => new Problem($"{(char)(i % 3)}", "")).ToList();
        GenerationEngine Engine() => new(Config, Numerics.Fp32, slots: 16, new SamplingOptions(), stopTokens: [3],
            maxTokens: 14, seed: 9);
        using var engine = Engine();
        var c3po = new C3poPartitioner(engine, new PromptStream(problems, seed: 1), groupSize, budget, staleness: 50);
        C3poPool? saved = null, waiting = null;
        var waitingInPool = 0;
        var trained = new HashSet<long>();
        var (total, largest) = (0L, 0);
        for (var version = 1; version <= 10; version++)
        {
            using (var model = Gpt.Create(Config, version)) engine.LoadWeights(Flat(model), version);
            var batch = c3po.Next();
            total += batch.CompletedTokens;
            largest = Math.Max(largest, batch.Groups.Max(g => g.Samples.Sum(s => s.Tokens.Count)));
            Assert.True(total >= version * budget && total < version * budget + largest, $"iteration {version}: " +
                $"{total} tokens in all for {version} x {budget}, largest group {largest}");
            if (saved?.Banked.Count > 0) Assert.Equal(saved.Banked[0].Id, batch.Groups[0].Id);
            Assert.All(batch.Groups.SelectMany(g => g.Samples), s => Assert.True(trained.Add(s.Id)));
            saved = c3po.Save();
            Assert.Equal(total - version * budget, saved.Ahead);
            if (saved.Banked.Count > 0) (waiting, waitingInPool) = (saved, c3po.InPool);
        }
        Assert.True(waiting is not null, "no group ever waited for the next iteration");
        // a fresh partitioner from the saved pool trains the waiting groups first
        using var other = Engine();
        using (var model = Gpt.Create(Config, 11)) other.LoadWeights(Flat(model), 11);
        var restored = new C3poPartitioner(other, new PromptStream(problems, seed: 2), groupSize, budget,
            staleness: 50);
        restored.Restore(waiting);
        Assert.Equal((waitingInPool, waiting.Ahead), (restored.InPool, restored.Save().Ahead));
        var first = restored.Next();
        Assert.Equal(waiting.Banked[0].Id, first.Groups[0].Id);
        Assert.Equal(waiting.Banked[0].Samples.Select(s => s.Tokens), first.Groups[0].Samples.Select(s => s.Tokens));
    }

    [Fact]
    public void Synchronous_GeneratesWholeGroups_ToCompletion()
    {
        using var engine = new GenerationEngine(Config, Numerics.Fp32, slots: 4, new SamplingOptions(),
            stopTokens: [3], maxTokens: 14, seed: 9);
        using (var model = Gpt.Create(Config, 1)) engine.LoadWeights(Flat(model), 1);
        var problems = new List<Problem> { new("\u0000\u0001", ""), new("\u0002", "") };
        var batch = new SynchronousRollouts(engine, new PromptStream(problems, 1), promptsPerStep: 3,
            groupSize: 4).Next();
        Assert.Equal(3, batch.Groups.Count);
        Assert.All(batch.Groups, g => Assert.All(g.Samples, s => Assert.True(s.IsFinished)));
        Assert.Equal(batch.Groups.Sum(g => g.Samples.Sum(s => s.Tokens.Count)), batch.SampledTokens);
        Assert.Equal((0, 0), (batch.Carried, batch.Purged));
    }

    private static float[] Flat(Gpt model) => Generation.GenerationEngineTests.Flat(model);
}
