namespace Toolkit.Options;

/// <summary>Options that were renamed or merged: a user who types an old name is told the new one, in one
/// line.</summary>
internal static class RetiredOptions
{
    private const string Model
        = "a preset (tiny, small, medium, base), a toolkit checkpoint folder or a Hugging Face folder";

    private static readonly Dictionary<string, (string Replacement, string Values)> Replacements
        = new(StringComparer.Ordinal)
    {
        ["--gpt-model"] = ("--model", Model), ["--gpt-checkpoint"] = ("--model", Model),
        ["--normalization"] = ("--loss-agg", "seq-mean-token-mean (GRPO, was sequence), budget (C3PO), token-mean " +
            "(DAPO), seq-mean-token-sum or seq-mean-token-sum-norm (Dr. GRPO)"),
    };

    /// <summary>What replaced <paramref name="option"/> (with dashes, or its camelCase key), or null.</summary>
    public static string? Replacement(string option) =>
        Replacements.TryGetValue(Dashed(option), out var r) ? r.Replacement : null;

    /// <summary>The one-line message for a retired option.</summary>
    public static string Message(string option, string replacement) =>
        $"{Dashed(option)} was replaced by {replacement}: " +
        $"{(Replacements.TryGetValue(Dashed(option), out var r) ? r.Values : "see --help")}.";

    /// <summary>The message for <paramref name="option"/> when it is retired and the command has its replacement
    /// (<paramref name="has"/>), else null.</summary>
    public static string? Explain(string option, Func<string, bool> has) =>
        Replacement(option) is { } replacement && has(replacement) ? Message(option, replacement) : null;

    private static string Dashed(string option) => option.StartsWith('-') ? option : "--" + OptionSchema.Kebab(option);
}
