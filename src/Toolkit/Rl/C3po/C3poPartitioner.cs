using System.Diagnostics;
using Toolkit.Generation;

namespace Toolkit.Rl;

/// <summary>
/// C3PO++ (Ring-1T, arXiv 2510.18855, §C3PO++): budget-controlled rollout partitioning. An inference pool of capacity
/// Ω (the engine's slots) is kept full of responses being generated; responses that finish are counted, by complete
/// groups (GRPO needs a prompt's G responses together), and as soon as the completed groups' tokens reach the budget Φ
/// the iteration trains on them only. Unfinished responses stay in the pool and are resumed by the next policy version
/// (each token keeps the version that generated it); a group still open after σ carry-overs is purged (counted, never
/// silently lost). Every response is therefore trained on exactly once, purged, or still in the pool.
/// </summary>
internal sealed class C3poPartitioner : IRolloutSource
{
    private readonly GenerationEngine _engine;
    private readonly PromptStream _prompts;
    private readonly GroupFactory _factory;
    private readonly int _groupSize;
    private readonly long _budget;
    private readonly int _staleness;
    private readonly Dictionary<long, OpenGroup> _open = [];
    private readonly List<Sequence> _carried = [];

    public C3poPartitioner(GenerationEngine engine, PromptStream prompts, int groupSize, long budget, int staleness)
    {
        (_engine, _prompts, _groupSize, _budget, _staleness) = (engine, prompts, groupSize, budget, staleness);
        _factory = new GroupFactory(groupSize);
    }

    /// <summary>Responses purged so far (their groups stayed open longer than σ iterations).</summary>
    public int PurgedTotal { get; private set; }

    /// <summary>Responses created so far (G per prompt opened).</summary>
    public long Opened => _factory.Sequences;

    /// <summary>Responses waiting in the pool (unfinished, or finished while a sibling is not).</summary>
    public int InPool => _open.Values.Sum(g => g.Samples.Count);

    public RolloutBatch Next()
    {
        var clock = Stopwatch.StartNew();
        var mark = EngineMark.Of(_engine);
        // resumed by the current policy version
        foreach (var s in _carried) _engine.Enqueue(s);
        _carried.Clear();
        var completed = new List<RolloutGroup>();
        long tokens = 0;
        while (tokens < _budget)
        {
            while (_engine.InFlight + _engine.Queued < _engine.Slots) Open(_prompts.Next());
            foreach (var finished in _engine.Step())
            {
                var group = _open[(long)finished.Tag!];
                if (++group.Finished < _groupSize) continue;
                _open.Remove(group.Id);
                completed.Add(new RolloutGroup(group.Id, group.Problem, group.Samples));
                tokens += group.Samples.Sum(s => (long)s.Tokens.Count);
            }
        }
        _carried.AddRange(_engine.EvictAll());
        var (purged, wasted) = Purge();
        return mark.Since(_engine, completed, clock.Elapsed.TotalSeconds, _carried.Count, purged, wasted);
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
        var (purged, wasted) = (0, 0L);
        foreach (var group in _open.Values.ToList())
        {
            if (++group.Carries <= _staleness) continue;
            _open.Remove(group.Id);
            _carried.RemoveAll(s => (long)s.Tag! == group.Id);
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
    }
}
