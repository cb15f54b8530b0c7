using System.CommandLine;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Cli;

/// <summary>
/// The CLI face of an options record: one System.CommandLine option per <see cref="OptionSpec"/>, all taking text that
/// <see cref="OptionBinder"/> converts, so the CLI, the magics and JSON files share names, defaults, descriptions and
/// error messages.
/// </summary>
internal sealed class CliOptions<T> where T : class, new()
{
    private readonly List<(OptionSpec Spec, Option Option)> _options = [];
    private readonly T _defaults;
    private readonly string _where;

    /// <summary>Adds the options of <typeparamref name="T"/> to <paramref name="command"/>, with defaults (and their
    /// help) from <paramref name="defaults"/>.</summary>
    public CliOptions(Command command, T defaults, string where)
    {
        (_defaults, _where) = (defaults, where);
        CommandSpecs.Add(command, OptionSchema.For<T>());
        foreach (var spec in OptionSchema.For<T>())
        {
            string[] aliases = spec.Alias is null ? [] : [spec.Alias];
            Option option = spec.IsFlag
                ? new Option<bool>(spec.Name, aliases) { Description = spec.HelpTextFor(defaults) }
                : new Option<string>(spec.Name, aliases) { Description = spec.HelpTextFor(defaults),
                    HelpName = spec.IsNumber ? "number" : spec.Choices.Count > 0 ? ChoicesName(spec) : "text" };
            if (spec.Choices.Count > 0) option.CompletionSources.Add(spec.Choices.ToArray());
            command.Options.Add(option);
            _options.Add((spec, option));
        }
    }

    /// <summary>The value's name in help: its choices, or "choice" when they would widen every row's column (the
    /// description lists them).</summary>
    private static string ChoicesName(OptionSpec spec) =>
        string.Join('|', spec.Choices) is { Length: <= 32 } choices ? choices : "choice";

    /// <summary>The options as given on the command line, over the defaults; validated when the record is a job's
    /// options.</summary>
    /// <exception cref="OptionException">Malformed or invalid; the message names the option.</exception>
    public T Bind(ParseResult parse) => Bind(parse, _defaults);

    /// <summary>The options as given on the command line, over <paramref name="defaults"/> (a spec file, a saved
    /// job).</summary>
    /// <exception cref="OptionException">Malformed or invalid; the message names the option.</exception>
    public T Bind(ParseResult parse, T defaults)
    {
        var given = new List<KeyValuePair<string, string?>>();
        foreach (var (spec, option) in _options)
            if (parse.GetResult(option) is { Implicit: false })
                given.Add(new(spec.Name,
                    option is Option<bool> flag ? (parse.GetValue(flag)
                        ? "true" : "false") : parse.GetValue((Option<string>)option)));
        var options = OptionBinder.Bind(defaults, given, _where);
        if (options is ICheckedOptions checkable) checkable.Check();
        return options;
    }
}

/// <summary>The option declarations behind each command, so an error can name the option it is about.</summary>
internal static class CommandSpecs
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Command,
        List<OptionSpec>> Declared = [];

    /// <summary>Records that <paramref name="command"/> takes <paramref name="specs"/>.</summary>
    public static void Add(Command command, IReadOnlyList<OptionSpec> specs)
    {
        lock (Declared) Declared.GetOrCreateValue(command).AddRange(specs);
    }

    /// <summary>The options <paramref name="command"/> takes (none when it declares no options record).</summary>
    public static IReadOnlyList<OptionSpec> Of(Command command)
    {
        lock (Declared) return Declared.TryGetValue(command, out var specs) ? [.. specs] : [];
    }
}
