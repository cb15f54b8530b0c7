using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;

namespace Toolkit.Options;

/// <summary>One option of an options record, as every front end offers it.</summary>
/// <param name="Name">The option with its dashes, e.g. <c>--group-size</c>.</param>
/// <param name="Alias">A second name with dashes, or null.</param>
/// <param name="Description">What it does.</param>
/// <param name="Path">The properties from the root record down to this option's property.</param>
/// <param name="DefaultText">The default as a user would type it (<c>none</c> for null).</param>
internal sealed record OptionSpec(string Name, string? Alias, string Description, IReadOnlyList<PropertyInfo> Path,
    string DefaultText)
{
    /// <summary>The property's type, without <see cref="Nullable{T}"/>.</summary>
    public Type ValueType => Nullable.GetUnderlyingType(Path[^1].PropertyType) ?? Path[^1].PropertyType;

    /// <summary>True for an on/off option (a bool): given without a value it means true.</summary>
    public bool IsFlag => ValueType == typeof(bool);

    /// <summary>True when the value is a number (front ends hint a numeric input).</summary>
    public bool IsNumber => ValueType == typeof(int) || ValueType == typeof(long) || ValueType == typeof(double);

    /// <summary>The valid values of an enum option, as typed; empty for other options.</summary>
    public IReadOnlyList<string> Choices => ValueType.IsEnum ? EnumNames(ValueType) : [];

    /// <summary>The property name in camelCase of the last path element's option name (<c>--group-size</c> is
    /// <c>groupSize</c>): the key the notebook kernel binds it to.</summary>
    public string CamelName => Camel(Name);

    /// <summary>The alias' camelCase key, or null.</summary>
    public string? CamelAlias => Alias is null ? null : Camel(Alias);

    /// <summary>This option's value in <paramref name="root"/> (an instance of the record the schema was made from), as
    /// a user would type it.</summary>
    public string ValueIn(object root)
    {
        object? value = root;
        foreach (var property in Path) value = value is null ? null : property.GetValue(value);
        return Text(value);
    }

    /// <summary>Description, valid values and the default taken from <paramref name="defaults"/>.</summary>
    public string HelpTextFor(object defaults)
        => Description + (Choices.Count > 0 ? $" One of: {string.Join(", ", Choices)}." : "")
            + $" Default: {ValueIn(defaults)}.";

    /// <summary>True if <paramref name="name"/> (with dashes) is this option's name or alias.</summary>
    public bool Matches(string name) => name == Name || (Alias is not null && name == Alias);

    /// <summary>The names an enum's members have in JSON and on the command line.</summary>
    public static IReadOnlyList<string> EnumNames(Type type) =>
        [.. type.GetFields(BindingFlags.Public | BindingFlags.Static).Select(f
            => f.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? Camel(f.Name))];

    /// <summary>The name an enum value has in JSON and on the command line.</summary>
    public static string EnumName(Type type, object value)
    {
        var field = type.GetField(Enum.GetName(type, value)!)!;
        return field.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? Camel(field.Name);
    }

    internal static string Text(object? value) => value switch
    {
        null => "none",
        Enum e => EnumName(e.GetType(), e),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Camel(string dashed)
    {
        var parts = dashed.TrimStart('-').Split('-', StringSplitOptions.RemoveEmptyEntries);
        return string.Concat(parts.Select((p,
            i) => i == 0 ? char.ToLowerInvariant(p[0]) + p[1..] : char.ToUpperInvariant(p[0]) + p[1..]));
    }
}
