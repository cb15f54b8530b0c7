using Microsoft.DotNet.Interactive.Commands;

namespace Toolkit.Interactive;

/// <summary>
/// Finds options the kernel did not bind. The kernel silently ignores unknown options after a subcommand (<c>#!toolkit
/// quickstart --bogus 1</c> runs as if it were absent), so every command re-reads its own directive line from the
/// submitted code and rejects names it does not declare.
/// </summary>
internal static class MagicOptions
{
    /// <param name="command">The bound command; its submitted code is read through <see cref="KernelCommand.Parent"/>,
    /// which the kernel sets only once the command is being handled (not during validation).</param>
    /// <param name="invoked">The directive as typed, e.g. <c>#!toolkit quickstart</c>.</param>
    /// <param name="options">The option names the directive declares.</param>
    public static IEnumerable<string> UnknownOptionErrors(KernelCommand command, string invoked,
        IReadOnlyCollection<string> options)
    {
        var code = FindCode(command);
        if (code is null) yield break;
        var known = options.ToHashSet(StringComparer.Ordinal);
        foreach (var line in code.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(invoked + " ",
            StringComparison.Ordinal) || l == invoked))
            foreach (var token in Tokens(line[invoked.Length..]))
                if (token.StartsWith("--", StringComparison.Ordinal) && !known.Contains(token))
                    yield return Toolkit.Options.RetiredOptions.Explain(token, known.Contains)
                        ?? $"unknown option '{token}' for {invoked}. Valid options: " +
                        $"{string.Join(", ", known.Order(StringComparer.Ordinal))}.";
    }

    /// <summary>
    /// The message of the <see cref="ArgumentException"/> that <paramref name="validate"/> throws, if any: bad option
    /// values become the kernel's validation diagnostic, so the cell fails before work starts.
    /// </summary>
    public static IEnumerable<string> ValidationErrors(Action validate)
    {
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            return [e.Message];
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
        {
            return [e.Message];
        }
        return [];
    }

    /// <summary>Throws <see cref="ArgumentException"/> with the first unknown-option error, if any.</summary>
    public static void ThrowIfUnknown(KernelCommand command, string invoked, IReadOnlyCollection<string> options)
    {
        if (UnknownOptionErrors(command, invoked,
            options).FirstOrDefault() is { } error) throw new ArgumentException(error);
    }

    private static string? FindCode(KernelCommand command)
    {
        for (var c = command; c is not null; c = c.Parent)
            if (c is SubmitCode submit) return submit.Code;
        return null;
    }

    private static IEnumerable<string> Tokens(string text)
    {
        var quoted = false;
        var current = new System.Text.StringBuilder();
        foreach (var ch in text)
        {
            if (ch == '"') quoted = !quoted;
            if (char.IsWhiteSpace(ch) && !quoted)
            {
                if (current.Length > 0) yield return current.ToString();
                current.Clear();
            }
            else current.Append(ch);
        }
        if (current.Length > 0) yield return current.ToString();
    }
}
