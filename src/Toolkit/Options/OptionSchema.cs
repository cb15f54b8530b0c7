using System.Collections.Concurrent;
using System.Reflection;
using System.Text;

namespace Toolkit.Options;

/// <summary>
/// The options of an options record: its <see cref="OptionAttribute"/> properties, and those of the records in its
/// <see cref="OptionGroupAttribute"/> properties, flattened. Names must be unique.
/// </summary>
internal static class OptionSchema
{
    private static readonly ConcurrentDictionary<Type, IReadOnlyList<OptionSpec>> Cache = new();

    /// <summary>The options of <typeparamref name="T"/>.</summary>
    public static IReadOnlyList<OptionSpec> For<T>() where T : new() => For(typeof(T));

    /// <summary>The options of <paramref name="type"/> (a record with a parameterless constructor).</summary>
    /// <exception cref="InvalidOperationException">Two options share a name: a declaration error.</exception>
    public static IReadOnlyList<OptionSpec> For(Type type) => Cache.GetOrAdd(type, t =>
    {
        var specs = new List<OptionSpec>();
        Collect(t, Activator.CreateInstance(t)!, [], [], specs);
        var duplicate = specs.SelectMany(s => s.Alias is null ? new[] { s.Name } : [s.Name,
            s.Alias]).GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidOperationException(
            $"{t.Name} declares option {duplicate.Key} twice.");
        return specs;
    });

    /// <summary>
    /// The command-line arguments that give <paramref name="options"/> to a command taking <typeparamref name="T"/>:
    /// <c>--name value</c> for every option whose value differs from <paramref name="defaults"/>' (a flag set to true
    /// alone), in declaration order, names and spellings from the declarations. Options <paramref name="skip"/> names
    /// (with dashes) are left out.
    /// </summary>
    public static IReadOnlyList<string> Arguments<T>(T options, T defaults, params string[] skip) where T : class, new()
    {
        var arguments = new List<string>();
        foreach (var spec in For<T>())
        {
            if (skip.Contains(spec.Name)) continue;
            var value = spec.Path.Aggregate((object?)options, (v, p) => v is null ? null : p.GetValue(v));
            var text = spec.ValueIn(options);
            if (value is null || text == spec.ValueIn(defaults)) continue;
            if (value is true && spec.IsFlag) arguments.Add(spec.Name);
            else arguments.AddRange([spec.Name, text]);
        }
        return arguments;
    }

    /// <summary>Every valid option name, sorted (for error messages).</summary>
    public static string ValidNames(IReadOnlyList<OptionSpec> specs) => string.Join(", ",
        specs.Select(s => s.Name).Order(StringComparer.Ordinal));

    /// <summary><c>GroupSize</c> → <c>group-size</c>.</summary>
    public static string Kebab(string name)
    {
        var text = new StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0 && (char.IsLower(name[i - 1]) || (i + 1 < name.Length
                && char.IsLower(name[i + 1])))) text.Append('-');
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }

    private static void Collect(Type type, object defaults, List<PropertyInfo> path, string[] exclude,
        List<OptionSpec> specs)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p
            => p.MetadataToken))
        {
            var value = property.GetValue(defaults);
            if (property.GetCustomAttribute<OptionGroupAttribute>() is { } group)
                Collect(property.PropertyType,
                    value ?? throw new InvalidOperationException(
                        $"{type.Name}.{property.Name} must default to an instance."), [.. path, property], [.. exclude,
                            .. group.Exclude], specs);
            else if (property.GetCustomAttribute<OptionAttribute>() is { } option && !exclude.Contains(option.Name
                ?? Kebab(property.Name)))
                specs.Add(new OptionSpec("--" + (option.Name ?? Kebab(property.Name)),
                    option.Alias is null ? null : "--" + option.Alias,
                    option.Description, [.. path, property], OptionSpec.Text(value)));
        }
    }
}
