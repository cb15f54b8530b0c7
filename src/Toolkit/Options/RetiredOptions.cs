namespace Toolkit.Options;

/// <summary>Options that were renamed or merged: a user who types an old name is told the new one, in one
/// line.</summary>
internal static class RetiredOptions
{
    private static readonly Dictionary<string, string> Replacements = new(StringComparer.Ordinal)
    {
        ["--gpt-model"] = "--model", ["--gpt-checkpoint"] = "--model",
    };

    /// <summary>What replaced <paramref name="option"/> (with dashes, or its camelCase key), or null.</summary>
    public static string? Replacement(string option)
    {
        var name = option.StartsWith('-') ? option : "--" + OptionSchema.Kebab(option);
        return Replacements.TryGetValue(name, out var replacement) ? replacement : null;
    }

    /// <summary>The one-line message for a retired option.</summary>
    public static string Message(string option, string replacement) =>
        $"{(option.StartsWith('-') ? option : "--" + OptionSchema.Kebab(option))} was replaced by {replacement}: a " +
        "preset (tiny, small, medium, base), a toolkit checkpoint folder or a Hugging Face folder.";

    /// <summary>The message for <paramref name="option"/> when it is retired and the command has its replacement
    /// (<paramref name="has"/>), else null.</summary>
    public static string? Explain(string option, Func<string, bool> has) =>
        Replacement(option) is { } replacement && has(replacement) ? Message(option, replacement) : null;
}
