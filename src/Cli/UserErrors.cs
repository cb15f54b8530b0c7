using System.CommandLine;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Cli;

/// <summary>
/// How the CLI ends: a user error (unknown option, malformed or out-of-range value, missing file) is one <c>error:
/// ...</c> line and exit code 2; a failed job is its message and exit code 1; an internal failure prints its stack
/// trace and exits 1. <c>--verbose</c> (or <c>TOOLKIT_VERBOSE=1</c>) adds the stack trace to user errors too.
/// </summary>
internal static class UserErrors
{
    /// <summary>Exit code of a user error.</summary>
    public const int UsageExitCode = 2;

    public static bool Verbose(string[] args)
        => args.Contains("--verbose") || Environment.GetEnvironmentVariable("TOOLKIT_VERBOSE") == "1";

    /// <summary>A parse error as one line: unknown options list the command's valid options.</summary>
    public static int ReportParseErrors(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var where = string.Join(' ', Path(command));
        var unknown = parse.UnmatchedTokens.FirstOrDefault(t => t.StartsWith('-'));
        var stray = parse.UnmatchedTokens.FirstOrDefault();
        var commands = string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name));
        var options = string.Join(", ", command.Options.Where(o => !o.Hidden).Select(o => o.Name)
            .Where(n => n.StartsWith("--", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        var retired = unknown is null
            ? null : RetiredOptions.Explain(unknown, r => command.Options.Any(o => o.Name == r));
        var message = retired
            ?? (unknown is null && stray is not null && command.Subcommands.Count > 0
            ? $"unknown command '{stray}' for {where}. Commands: {commands}."
            : unknown is not null
            ? $"unknown option '{unknown}' for {where}. Valid options: {options}."
            : parse.Errors[0].Message + (command.Subcommands.Count > 0 ? $" Commands of {where}: {commands}." : ""));
        Console.Error.WriteLine($"error: {message}");
        return UsageExitCode;
    }

    /// <summary>
    /// Prints <paramref name="e"/> the way its kind deserves and returns the exit code; <paramref name="specs"/> are
    /// the options of the command that was run, so a validation message can name the option.
    /// </summary>
    public static int Report(Exception e, bool verbose, IReadOnlyList<OptionSpec> specs)
    {
        switch (e)
        {
            case OperationCanceledException:
                Console.Error.WriteLine("error: cancelled.");
                return 130;
            case ArgumentException or FileNotFoundException or DirectoryNotFoundException or FormatException
                or InvalidDataException:
                Console.Error.WriteLine($"error: {OptionException.Describe(e, specs)}");
                if (verbose) Console.Error.WriteLine(e);
                return UsageExitCode;
            case JobFailedException:
                Console.Error.WriteLine($"error: {e.Message}");
                if (verbose) Console.Error.WriteLine(e);
                return 1;
            default:
                Console.Error.WriteLine($"internal error: {e}");
                return 1;
        }
    }

    private static IEnumerable<string> Path(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c
            && c is not RootCommand; s = c.Parents.FirstOrDefault()) names.Insert(0, c.Name);
        return names.Count == 0 ? ["toolkit"] : names;
    }
}
