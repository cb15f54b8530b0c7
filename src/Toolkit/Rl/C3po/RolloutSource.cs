using System.Diagnostics;
using Toolkit.Generation;

namespace Toolkit.Rl;

/// <summary>The responses to one prompt (GRPO's group): advantages are standardised within it.</summary>
/// <param name="Id">Unique within a run.</param>
/// <param name="Problem">The prompt and its reference answer.</param>
/// <param name="Samples">The G responses, finished.</param>
internal sealed record RolloutGroup(long Id, Problem Problem, IReadOnlyList<Sequence> Samples);

/// <summary>What one iteration's rollout phase produced.</summary>
/// <param name="Groups">Complete groups to train on.</param>
/// <param name="SampledTokens">Tokens sampled in this phase (all sequences, finished or not).</param>
/// <param name="PrefixTokens">Tokens fed again (prompts; resumed prefixes).</param>
/// <param name="Seconds">Wall time of the phase.</param>
/// <param name="Carried">Sequences left unfinished in the pool for the next policy version.</param>
/// <param name="Purged">Sequences dropped this iteration because their group stayed open longer than the staleness
/// limit.</param>
internal sealed record RolloutBatch(IReadOnlyList<RolloutGroup> Groups, long SampledTokens, long PrefixTokens,
    double Seconds, int Carried, int Purged)
{
    /// <summary>Response tokens of the complete groups (what the budget counts).</summary>
    public long CompletedTokens => Groups.Sum(g => g.Samples.Sum(s => (long)s.Tokens.Count));

    /// <summary>Sampled tokens per second of the phase.</summary>
    public double TokensPerSecond => Seconds > 0 ? SampledTokens / Seconds : 0;

    /// <summary>Of <see cref="Seconds"/>, the engine's steps that fed a prefix (prompts, resumed sequences).</summary>
    public double PrefillSeconds { get; init; }

    /// <summary>Of <see cref="Seconds"/>, the engine's decode-only steps.</summary>
    public double DecodeSeconds { get; init; }

    /// <summary>Sampled tokens thrown away this iteration: those of purged responses.</summary>
    public long WastedTokens { get; init; }
}

/// <summary>The engine's counters at the start of a rollout phase, to report the phase's share of each.</summary>
internal readonly record struct EngineMark(long Sampled, long Prefix, double PrefillSeconds, double DecodeSeconds)
{
    public static EngineMark Of(GenerationEngine engine) =>
        new(engine.SampledTokens, engine.PrefixTokens, engine.PrefillSeconds, engine.DecodeSeconds);

    /// <summary>The phase's batch: what the engine did since the mark.</summary>
    public RolloutBatch Since(GenerationEngine engine, IReadOnlyList<RolloutGroup> groups, double seconds,
        int carried = 0, int purged = 0, long wasted = 0) =>
        new(groups, engine.SampledTokens - Sampled, engine.PrefixTokens - Prefix, seconds, carried, purged)
        {
            PrefillSeconds = engine.PrefillSeconds - PrefillSeconds,
            DecodeSeconds = engine.DecodeSeconds - DecodeSeconds,
            WastedTokens = wasted,
        };
}

/// <summary>Where an RL step's rollouts come from: the synchronous baseline or C3PO++.</summary>
internal interface IRolloutSource
{
    /// <summary>Generates with the engine's current weights until this iteration's rollouts are ready.</summary>
    RolloutBatch Next();
}

/// <summary>An endless, seeded, shuffled cycle over a task's training problems, and the tokens their prompts
/// become.</summary>
internal sealed class PromptStream(IReadOnlyList<Problem> problems, int seed, TaskTokens? tokens = null)
{
    /// <summary>How prompts become tokens (default the byte tokenizer's).</summary>
    public TaskTokens Tokens { get; } = tokens ?? TaskTokens.Bytes;

    private readonly Random _random = new(seed);
    private int[] _order = [];
    private int _next;

    /// <summary>Problems drawn so far.</summary>
    public long Drawn { get; private set; }

    /// <summary>Draws <paramref name="count"/> problems and drops them: a resumed run's stream continues where the
    /// saved one stood.</summary>
    public void Skip(long count)
    {
        for (var i = 0L; i < count; i++) Next();
    }

    public Problem Next()
    {
        Drawn++;
        if (_next == _order.Length)
        {
            _order = [.. Enumerable.Range(0, problems.Count).OrderBy(_ => _random.Next())];
            _next = 0;
        }
        return problems[_order[_next++]];
    }
}

/// <summary>Builds a group's sequences (the prompt's tokens, G times) with unique ids.</summary>
internal sealed class GroupFactory(int groupSize)
{
    private long _groups;
    private long _sequences;

    /// <summary>Groups created so far.</summary>
    public long Groups => _groups;

    /// <summary>Sequences created so far.</summary>
    public long Sequences => _sequences;

    /// <summary>Continues the ids of a saved run.</summary>
    public void Restore(long groups, long sequences) => (_groups, _sequences) = (groups, sequences);

    public (long Id, List<Sequence> Samples) Create(Problem problem, TaskTokens tokens)
    {
        var id = _groups++;
        var prompt = tokens.Prompt(problem);
        return (id, [.. Enumerable.Range(0, groupSize).Select(_ => new Sequence(_sequences++, prompt, id))]);
    }
}

/// <summary>The synchronous baseline: P prompts × G responses, all generated to completion, then training.</summary>
internal sealed class SynchronousRollouts(GenerationEngine engine, PromptStream prompts, int promptsPerStep,
    int groupSize) : IRolloutSource
{
    private readonly GroupFactory _factory = new(groupSize);

    public RolloutBatch Next()
    {
        var clock = Stopwatch.StartNew();
        var mark = EngineMark.Of(engine);
        var groups = Enumerable.Range(0, promptsPerStep).Select(_ => prompts.Next()).Select(p => (Problem: p,
            Group: _factory.Create(p, prompts.Tokens))).ToList();
        foreach (var s in groups.SelectMany(g => g.Group.Samples)) engine.Enqueue(s);
        engine.RunToCompletion();
        return mark.Since(engine, [.. groups.Select(g => new RolloutGroup(g.Group.Id, g.Problem, g.Group.Samples))],
            clock.Elapsed.TotalSeconds);
    }
}
