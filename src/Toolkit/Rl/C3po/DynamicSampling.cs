namespace Toolkit.Rl;

/// <summary>
/// DAPO's dynamic sampling over a synchronous source: groups whose rewards are all equal (every response right, or
/// every one wrong) have zero advantage and teach nothing, so they are dropped and more prompts are drawn until the
/// batch holds as many informative groups as one draw gives, or <paramref name="maxDraws"/> draws were made. Extra
/// informative groups of the last draw are dropped too (DAPO keeps the batch size fixed). When no draw gave an
/// informative group, the last draw is trained on as it is (its advantages are zero).
/// </summary>
/// <param name="inner">The source (one batch of prompts × samples per draw).</param>
/// <param name="informative">Whether a group's rewards differ.</param>
/// <param name="maxDraws">Draws per step at most, the first included.</param>
internal sealed class DynamicSampling(IRolloutSource inner, Func<RolloutGroup, bool> informative, int maxDraws)
    : IRolloutSource
{
    /// <summary>Groups dropped by the last <see cref="Next"/> (uninformative, or beyond the batch size).</summary>
    public int Dropped { get; private set; }

    /// <summary>Draws the last <see cref="Next"/> made.</summary>
    public int Draws { get; private set; }

    /// <inheritdoc/>
    public RolloutBatch Next()
    {
        var batches = new List<RolloutBatch>();
        var kept = new List<RolloutGroup>();
        var target = 0;
        do
        {
            var batch = inner.Next();
            batches.Add(batch);
            target = Math.Max(target, batch.Groups.Count);
            kept.AddRange(batch.Groups.Where(informative));
        }
        while (kept.Count < target && batches.Count < maxDraws);
        var all = batches.Sum(b => b.Groups.Count);
        var groups = kept.Count > 0 ? kept.Take(target).ToList() : [.. batches[^1].Groups];
        (Dropped, Draws) = (all - groups.Count, batches.Count);
        static long Tokens(IEnumerable<RolloutGroup> g) => g.Sum(x => x.Samples.Sum(s => (long)s.Tokens.Count));
        return new RolloutBatch(groups, batches.Sum(b => b.SampledTokens), batches.Sum(b => b.PrefixTokens),
            batches.Sum(b => b.Seconds), batches[^1].Carried, batches.Sum(b => b.Purged))
        {
            PrefillSeconds = batches.Sum(b => b.PrefillSeconds), DecodeSeconds = batches.Sum(b => b.DecodeSeconds),
            // the dropped groups' tokens, and any the sources threw away
            WastedTokens = batches.Sum(b => b.WastedTokens) + Tokens(batches.SelectMany(b => b.Groups))
                - Tokens(groups),
        };
    }
}
