using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Interactive;

/// <summary>
/// A magic subcommand whose options are an options record's: its parameters are derived from the record's
/// <see cref="OptionSpec"/>s (names, descriptions, defaults, completions), and what the kernel binds is converted by
/// the same <see cref="OptionBinder"/> the CLI uses, so both accept the same values and refuse bad ones with the same
/// messages.
/// </summary>
/// <typeparam name="TOptions">The options record.</typeparam>
public abstract class OptionsMagicCommand<TOptions> : KernelDirectiveCommand where TOptions : class, new()
{
    /// <summary>Every parameter the kernel bound, by its camelCase key (the kernel writes values as JSON
    /// strings).</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Values { get; set; }

    /// <summary>The directive: one parameter per option (and one per alias).</summary>
    internal static KernelActionDirective CreateDirective(string name, string description, TOptions defaults)
    {
        var directive = new KernelActionDirective(name, description);
        foreach (var spec in OptionSchema.For<TOptions>())
            foreach (var parameterName in spec.Alias is null ? [spec.Name] : new[] { spec.Name, spec.Alias })
            {
                var parameter = new KernelDirectiveParameter(parameterName,
                    parameterName == spec.Name ? spec.HelpTextFor(defaults) : $"Same as {spec.Name}.")
                {
                    TypeHint = spec.IsNumber ? "number" : "text",
                    Flag = spec.IsFlag,
                };
                if (spec.Choices.Count > 0) parameter.AddCompletions(() => spec.Choices);
                directive.Parameters.Add(parameter);
            }
        return directive;
    }

    /// <summary>The options the cell gave, over <paramref name="defaults"/>, validated.</summary>
    /// <exception cref="OptionException">Unknown, malformed or invalid; one line naming the option.</exception>
    internal TOptions Bind(TOptions defaults, string where)
    {
        var specs = OptionSchema.For<TOptions>();
        MagicOptions.ThrowIfUnknown(this, "#!" + where,
            [.. specs.SelectMany(s => s.Alias is null ? new[] { s.Name } : [s.Name, s.Alias])]);
        var given = (Values ?? []).Where(v => specs.Any(s
            => s.CamelName == v.Key || s.CamelAlias == v.Key) && !(v.Value.ValueKind == JsonValueKind.False))
            .Select(v => new KeyValuePair<string, string?>(v.Key, NotebookSize.Shrink(v.Key, v.Value.ValueKind switch
            {
                JsonValueKind.String => v.Value.GetString(),
                JsonValueKind.True => "true",
                _ => v.Value.GetRawText(),
            })));
        var options = OptionBinder.Bind(defaults, given, where);
        try
        {
            if (options is ICheckedOptions checkable) checkable.Check();
        }
        catch (ArgumentException e) when (e is not OptionException)
        {
            throw new OptionException(OptionException.Describe(e, specs), e);
        }
        return options;
    }

    /// <summary>Binding errors become the kernel's validation diagnostic, so a bad cell fails before any work
    /// starts.</summary>
    private protected IEnumerable<string> ValidationErrors(TOptions defaults,
        string where) => MagicOptions.ValidationErrors(() => Bind(defaults, where));
}
