namespace Toolkit.Paro;

/// <summary>Where one model-state component lives.</summary>
public enum ShardLevel
{
    /// <summary>N: a full replica on every rank (divisor 1).</summary>
    None = 0,
    /// <summary>I: partitioned inside each group of m ranks, replicated across groups (divisor m).</summary>
    Intra = 1,
    /// <summary>G: partitioned across all n ranks (divisor n).</summary>
    Global = 2,
}

/// <summary>
/// A PaRO-DP strategy: the placement of parameters, gradients and optimizer states, written as three letters in that
/// order (N, I or G each), e.g. <c>NIG</c>.
/// </summary>
/// <remarks>
/// PaRO (arXiv 2310.06003, §3.1): 27 combinations exist; a strategy is effective when level(gradients) ≤
/// level(optimizer states) and level(parameters) ≤ level(optimizer states): a rank cannot update, or hold gradients
/// for, a slice finer than the optimizer state it owns would need. Equivalences: NNN = DDP, NNG = ZeRO-1, NGG = ZeRO-2,
/// GGG = ZeRO-3 (FSDP FULL_SHARD), III = MiCS (FSDP HYBRID_SHARD).
/// </remarks>
/// <param name="Parameters">Placement of parameters (p).</param>
/// <param name="Gradients">Placement of gradients (g).</param>
/// <param name="OptimizerStates">Placement of optimizer states (os).</param>
public sealed record ShardingStrategy(ShardLevel Parameters, ShardLevel Gradients, ShardLevel OptimizerStates)
{
    /// <summary>Named aliases and the codes they stand for.</summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string,
        string>(StringComparer.OrdinalIgnoreCase)
    {
        ["ddp"] = "NNN", ["zero1"] = "NNG", ["zero2"] = "NGG", ["zero3"] = "GGG", ["fsdp"] = "GGG",
        ["mics"] = "III", ["hsdp"] = "III",
    };

    /// <summary>All 27 codes, in N &lt; I &lt; G order.</summary>
    public static IEnumerable<ShardingStrategy> All =>
        from p in Levels from g in Levels from os in Levels select new ShardingStrategy(p, g, os);

    /// <summary>The effective strategies (level(g) ≤ level(os), level(p) ≤ level(os)).</summary>
    public static IEnumerable<ShardingStrategy> Effective => All.Where(s => s.IsEffective);

    /// <summary>The strategies this toolkit's engine trains and the benchmark compares (the paper's set plus DDP and
    /// MiCS).</summary>
    public static IReadOnlyList<ShardingStrategy> Trained { get; } =
        new[] { "NNN", "NNG", "NGG", "GGG", "III", "NII", "NIG", "IIG", "IGG", "ING" }.Select(c => Parse(c)).ToList();

    private static readonly ShardLevel[] Levels = [ShardLevel.None, ShardLevel.Intra, ShardLevel.Global];

    /// <summary>The three-letter code.</summary>
    public string Code => $"{Letter(Parameters)}{Letter(Gradients)}{Letter(OptimizerStates)}";

    /// <summary>True when gradients and parameters are no finer-sharded than optimizer states.</summary>
    public bool IsEffective => Gradients <= OptimizerStates && Parameters <= OptimizerStates;

    /// <summary>The best-known name of this strategy, if it has one (DDP, ZeRO-1, ...).</summary>
    public string? KnownAs => Code switch
    {
        "NNN" => "DDP", "NNG" => "ZeRO-1", "NGG" => "ZeRO-2", "GGG" => "ZeRO-3", "III" => "MiCS/HSDP", _ => null,
    };

    /// <summary>
    /// Parses a code (<c>NIG</c>, case-insensitive) or an alias (<c>zero3</c>). Rejects malformed and ineffective codes
    /// unless <paramref name="allowIneffective"/>.
    /// </summary>
    /// <exception cref="ShardingPlanException">Malformed or ineffective; the message gives the reason and the valid
    /// list.</exception>
    public static ShardingStrategy Parse(string text, bool allowIneffective = false)
    {
        var value = (text ?? "").Trim();
        if (Aliases.TryGetValue(value, out var aliased)) value = aliased;
        value = value.ToUpperInvariant();
        if (value.Length != 3 || value.Any(c => c is not ('N' or 'I' or 'G')))
            throw ShardingPlanException.Malformed(text ?? "");
        var strategy = new ShardingStrategy(Level(value[0]), Level(value[1]), Level(value[2]));
        if (!allowIneffective && !strategy.IsEffective)
            throw ShardingPlanException.Ineffective(strategy);
        return strategy;
    }

    /// <summary>The number of pieces a component at <paramref name="level"/> is split into: 1, m or n.</summary>
    public static int Divisor(ShardLevel level, int ranks, int groupSize) => level switch
    {
        ShardLevel.None => 1,
        ShardLevel.Intra => groupSize,
        _ => ranks,
    };

    /// <inheritdoc/>
    public override string ToString() => Code;

    internal static string ValidList() =>
        string.Join(", ", Effective.Select(s => s.Code)) + "; aliases: " + string.Join(", ",
            Aliases.Select(a => $"{a.Key}={a.Value}"));

    private static char Letter(ShardLevel level) => level switch { ShardLevel.None => 'N', ShardLevel.Intra => 'I',
        _ => 'G' };

    private static ShardLevel Level(char letter) => letter switch { 'N' => ShardLevel.None, 'I' => ShardLevel.Intra,
        _ => ShardLevel.Global };
}

/// <summary>A sharding strategy or plan was rejected; the message says why and lists the valid choices.</summary>
public sealed class ShardingPlanException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public ShardingPlanException(string message) : base(message) { }

    internal static ShardingPlanException Malformed(string text) => new(
        $"'{text}' is not a PaRO strategy: expected three letters for parameters, gradients and optimizer states, " +
            $"each N (replicated), I (sharded in a group) or G (sharded globally), or an alias. " +
                $"Valid: {ShardingStrategy.ValidList()}.");

    internal static ShardingPlanException Ineffective(ShardingStrategy s) => new(
        $"{s.Code} is not effective: " +
        (s.Gradients > s.OptimizerStates
            ? "gradients are sharded more finely than optimizer states, so a rank would lack gradients for the " +
                "optimizer slice it owns" :
            "parameters are sharded more finely than optimizer states, so optimizer updates would be replicated on " +
                "ranks that do not hold those parameters") +
        $". Valid: {ShardingStrategy.ValidList()}.");
}
