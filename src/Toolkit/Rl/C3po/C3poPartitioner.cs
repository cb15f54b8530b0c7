using System.Diagnostics;
using Toolkit.Generation;

namespace Toolkit.Rl;

/// <summary>
/// C3PO++ (Ring-1T, arXiv 2510.18855, §C3PO++): budget-controlled rollout partitioning. An inference pool of capacity
/// Ω (the engine's slots) is kept full of responses being generated; responses that finish are counted, by complete
/// groups (GRPO needs a prompt's G responses together), and as soon as the completed groups' tokens reach the budget Φ
/// the iteration trains on them only. Φ is kept on average: the target of an iteration is Φ less what earlier ones
/// trained beyond it, and groups that complete after the target was reached wait for the next iteration, which trains
/// them first (a group at the staleness limit σ never waits). So n iterations train nΦ tokens and less than one group
/// more, groups at σ aside. Unfinished responses stay in the pool and are resumed by the next policy version (each
/// token keeps the version that generated it); a group still open after σ carry-overs is purged (counted, never
/// silently lost). Every response is therefore trained on exactly once, purged, or still in the pool. Carried
/// responses leave the engine and feed their prefix again under the new weights, or, in flight
/// (<c>--inflight-update</c>), stay in their slots and go on from the cache the older weights filled.
/// </summary>
internal sealed class C3poPartitioner : IRolloutSource
{
    private readonly GenerationEngine _engine;
    private readonly PromptStream _prompts;
    private readonly GroupFactory _factory;
    private readonly int _groupSize;
    private readonly long _budget;
    private readonly int _staleness;
    private readonly bool _inflight;
    private readonly Dictionary<long, OpenGroup> _open = [];
    private readonly List<Sequence> _carried = [];
    private readonly List<OpenGroup> _banked = [];
    private long _ahead;

    public C3poPartitioner(GenerationEngine engine, PromptStream prompts, int groupSize, long budget, int staleness,
        bool inflight = false)
    {
        (_engine, _prompts, _groupSize, _budget, _staleness, _inflight) = (engine, prompts, groupSize, budget,
            staleness, inflight);
        _factory = new GroupFactory(groupSize);
    }

    /// <summary>Responses purged so far (their groups stayed open longer than σ iterations).</summary>
    public int PurgedTotal { get; private set; }

    /// <summary>Responses created so far (G per prompt opened).</summary>
    public long Opened => _factory.Sequences;

    /// <summary>Responses waiting in the pool (unfinished, finished while a sibling is not, or in a complete group
    /// held back for the next iteration).</summary>
    public int InPool => _open.Values.Concat(_banked).Sum(g => g.Samples.Count);

    public RolloutBatch Next()
    {
        var clock = Stopwatch.StartNew();
        var mark = EngineMark.Of(_engine);
        // resumed by the current policy version (in flight, only after a restore: the others never left the engine)
        foreach (var s in _carried) _engine.Enqueue(s);
        _carried.Clear();
        var completed = new List<RolloutGroup>();
        long tokens = 0, target = _budget - _ahead;
        // past the target a complete group waits for the next iteration, unless it is at its staleness limit
        bool Take(OpenGroup group)
        {
            if (tokens >= target && completed.Count > 0 && group.Carries < _staleness) return false;
            completed.Add(new RolloutGroup(group.Id, group.Problem, group.Samples));
            tokens += group.Tokens;
            return true;
        }
        _banked.RemoveAll(Take);
        while (tokens < target || completed.Count == 0)
        {
            while (_engine.InFlight + _engine.Queued < _engine.Slots) Open(_prompts.Next());
            foreach (var finished in _engine.Step())
            {
                var group = _open[(long)finished.Tag!];
                if (++group.Finished < _groupSize) continue;
                _open.Remove(group.Id);
                if (!Take(group)) _banked.Add(group);
            }
        }
        _ahead += tokens - _budget;
        if (!_inflight) _carried.AddRange(_engine.EvictAll());
        var (purged, wasted) = Purge();
        return mark.Since(_engine, completed, clock.Elapsed.TotalSeconds, _inflight ? _engine.Pending.Count
            : _carried.Count, purged, wasted);
    }

    /// <summary>The pool between iterations: every open group with its responses, the order the carried ones are
    /// resumed in (in flight: the engine's order; a restored run feeds their prefixes again), the complete groups
    /// held back, and the counters.</summary>
    public C3poPool Save() => new([.. _open.Values.Select(Saved)],
        [.. (_inflight ? _engine.Pending : _carried).Select(s => s.Id)], _factory.Groups, _factory.Sequences,
        PurgedTotal) { Banked = [.. _banked.Select(Saved)], Ahead = _ahead };

    private static SavedGroup Saved(OpenGroup g) =>
        new(g.Id, g.Problem, g.Finished, g.Carries, [.. g.Samples.Select(SavedSequence.Of)]);

    private static OpenGroup Restored(SavedGroup g) =>
        new(g.Id, g.Problem, [.. g.Samples.Select(s => s.ToSequence(g.Id))])
        { Finished = g.Finished, Carries = g.Carries };

    /// <summary>Puts a saved pool back (into a partitioner that has not run yet).</summary>
    public void Restore(C3poPool pool)
    {
        if (_open.Count > 0 || _factory.Sequences > 0)
            throw new InvalidOperationException("Restore a pool before the first iteration.");
        foreach (var group in pool.Groups.Select(Restored)) _open[group.Id] = group;
        var byId = _open.Values.SelectMany(g => g.Samples).ToDictionary(s => s.Id);
        _carried.AddRange(pool.Carried.Select(id => byId[id]));
        _banked.AddRange(pool.Banked.Select(Restored));
        _ahead = pool.Ahead;
        _factory.Restore(pool.GroupsOpened, pool.SequencesOpened);
        PurgedTotal = pool.Purged;
    }

    private void Open(Problem problem)
    {
        var (id, samples) = _factory.Create(problem, _prompts.Tokens);
        _open[id] = new OpenGroup(id, problem, samples);
        foreach (var s in samples) _engine.Enqueue(s);
    }

    /// <summary>Ages every open group by one iteration and drops those older than σ, with their unfinished
    /// responses; returns the responses dropped and the tokens they had sampled.</summary>
    private (int Responses, long Tokens) Purge()
    {
        foreach (var group in _banked) group.Carries++;
        var (purged, wasted) = (0, 0L);
        foreach (var group in _open.Values.ToList())
        {
            if (++group.Carries <= _staleness) continue;
            _open.Remove(group.Id);
            _carried.RemoveAll(s => (long)s.Tag! == group.Id);
            if (_inflight) _engine.EvictWhere(s => (long)s.Tag! == group.Id);
            purged += group.Samples.Count;
            wasted += group.Samples.Sum(s => (long)s.Tokens.Count);
        }
        PurgedTotal += purged;
        return (purged, wasted);
    }

    private sealed class OpenGroup(long id, Problem problem, List<Sequence> samples)
    {
        public long Id { get; } = id;
        public Problem Problem { get; } = problem;
        public List<Sequence> Samples { get; } = samples;
        public int Finished { get; set; }
        public int Carries { get; set; }
        public long Tokens => Samples.Sum(s => (long)s.Tokens.Count);
    }
}

/// <summary>A C3PO++ pool as saved with a checkpoint.</summary>
/// <param name="Groups">The open groups.</param>
/// <param name="Carried">Ids of the unfinished responses, in the order they are resumed.</param>
/// <param name="GroupsOpened">Groups opened so far (the next group's id).</param>
/// <param name="SequencesOpened">Responses created so far (the next response's id).</param>
/// <param name="Purged">Responses purged so far.</param>
internal sealed record C3poPool(IReadOnlyList<SavedGroup> Groups, IReadOnlyList<long> Carried, long GroupsOpened,
    long SequencesOpened, int Purged)
{
    /// <summary>Complete groups held back over the budget, trained first by the next iteration.</summary>
    public IReadOnlyList<SavedGroup> Banked { get; init; } = [];

    /// <summary>Tokens trained so far beyond Φ per iteration (the next iteration's target is Φ less this).</summary>
    public long Ahead { get; init; }
}

/// <summary>An open group: its problem, how many of its responses finished, its carry-overs, its responses.</summary>
internal sealed record SavedGroup(long Id, Problem Problem, int Finished, int Carries,
    IReadOnlyList<SavedSequence> Samples);

/// <summary>A response as far as it got: its tokens with their log-probabilities, versions and routing.</summary>
internal sealed record SavedSequence(long Id, IReadOnlyList<long> Prompt, IReadOnlyList<long> Tokens,
    IReadOnlyList<float> LogProbs, IReadOnlyList<int> Versions, IReadOnlyList<int[][]> Routing, bool IsFinished,
    bool IsTruncated, int Evictions)
{
    public static SavedSequence Of(Sequence s) => new(s.Id, [.. s.Prompt], [.. s.Tokens], [.. s.LogProbs],
        [.. s.Versions], [.. s.Routing], s.IsFinished, s.IsTruncated, s.Evictions);

    public Sequence ToSequence(long group)
    {
        var s = new Sequence(Id, Prompt, group) { IsFinished = IsFinished, IsTruncated = IsTruncated,
            Evictions = Evictions };
        s.Tokens.AddRange(Tokens);
        s.LogProbs.AddRange(LogProbs);
        s.Versions.AddRange(Versions);
        s.Routing.AddRange(Routing);
        return s;
    }
}
