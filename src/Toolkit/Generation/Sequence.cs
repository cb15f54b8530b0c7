namespace Toolkit.Generation;

/// <summary>
/// One sequence being generated: its prompt, the tokens generated so far, and for each generated token its
/// log-probability under the engine that sampled it and that engine's weight version. A sequence taken out unfinished
/// (<see cref="GenerationEngine.EvictAll"/>) can be queued again, even on newer weights: its prefix is fed again and
/// generation continues, the older tokens keeping their versions.
/// </summary>
/// <param name="id">The caller's identifier.</param>
/// <param name="prompt">Prompt tokens (at least one).</param>
/// <param name="tag">Anything the caller wants back with it (the problem, the group).</param>
public sealed class Sequence(long id, IReadOnlyList<long> prompt, object? tag = null)
{
    /// <summary>The caller's identifier.</summary>
    public long Id { get; } = id;
    /// <summary>Prompt tokens.</summary>
    public IReadOnlyList<long> Prompt { get; } = prompt.Count > 0
        ? prompt : throw new ArgumentException("A prompt needs at least one token.", nameof(prompt));
    /// <summary>The caller's tag.</summary>
    public object? Tag { get; } = tag;
    /// <summary>Generated tokens (the stop token included when it was drawn).</summary>
    public List<long> Tokens { get; } = [];
    /// <summary>log π_infer of each generated token, as sampled.</summary>
    public List<float> LogProbs { get; } = [];
    /// <summary>The weight version that generated each token.</summary>
    public List<int> Versions { get; } = [];
    /// <summary>For a mixture-of-experts model: per generated token, per layer, the experts the engine routed its
    /// position to (sorted).</summary>
    public List<int[][]> Routing { get; } = [];
    /// <summary>True once it stopped or hit a length limit.</summary>
    public bool IsFinished { get; internal set; }
    /// <summary>True when it ended at a length limit without the stop token.</summary>
    public bool IsTruncated { get; internal set; }
    /// <summary>True when it ended at a stop token (the last of <see cref="Tokens"/>).</summary>
    public bool EndedAtStop => IsFinished && !IsTruncated;
    /// <summary>Times it was taken out unfinished (C3PO++'s staleness counter is kept by the caller).</summary>
    public int Evictions { get; internal set; }
    internal int Fed;   // tokens of Prompt + Tokens fed into the current slot's cache
    internal long Token(int index) => index < Prompt.Count ? Prompt[index] : Tokens[index - Prompt.Count];
    internal int Length => Prompt.Count + Tokens.Count;
}
