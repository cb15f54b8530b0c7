using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Toolkit.Runtime;

namespace Toolkit.Options;

/// <summary>
/// Builds an options record from option values as users type them (<c>--group-size 2</c>), over the record's defaults,
/// through its JSON form: so the CLI, the magics and configuration files share one grammar, one set of names and one
/// set of error messages.
/// </summary>
internal static class OptionBinder
{
    /// <summary>Applies <paramref name="values"/> (option name with dashes, or its camelCase key, to the text typed;
    /// null for a bare flag) to <paramref name="defaults"/>.</summary>
    /// <param name="defaults">The record to start from.</param>
    /// <param name="values">The options given.</param>
    /// <param name="where">The command, for messages (<c>paro train</c>).</param>
    /// <exception cref="OptionException">An unknown option or a malformed value; the message lists the valid names or
    /// values.</exception>
    public static T Bind<T>(T defaults, IEnumerable<KeyValuePair<string, string?>> values,
        string where) where T : class, new()
    {
        var specs = OptionSchema.For<T>();
        var root = JsonSerializer.SerializeToNode(defaults, ToolkitJson.Options)!.AsObject();
        foreach (var (key, text) in values)
        {
            var spec = specs.FirstOrDefault(s => s.Matches(key) || key == s.CamelName || key == s.CamelAlias)
                ?? throw OptionException.Unknown(key.StartsWith('-') ? key : "--"
                    + OptionSchema.Kebab(key), specs, where);
            var node = root;
            foreach (var property in spec.Path.SkipLast(1))
                node = node[JsonName(property.Name)]!.AsObject();
            node[JsonName(spec.Path[^1].Name)] = Convert(spec, text);
        }
        try
        {
            return root.Deserialize<T>(ToolkitJson.Options)
                ?? throw new OptionException($"the options of {where} are empty.");
        }
        catch (JsonException e)
        {
            throw new OptionException($"the options of {where} could not be read: {e.Message}", e);
        }
    }

    /// <summary>Reads an options record from a JSON configuration file, refusing keys it does not know.</summary>
    /// <exception cref="OptionException">A key is unknown or a value has the wrong type; the message names
    /// it.</exception>
    /// <param name="path">The file.</param>
    /// <param name="migrate">Rewrites an older layout of the record's JSON (keys that moved) before it is read, or
    /// null.</param>
    public static T ReadConfig<T>(string path, Action<JsonObject>? migrate = null) where T : class, new()
    {
        try
        {
            var text = File.ReadAllText(path);
            if (migrate is not null && JsonNode.Parse(text) is JsonObject node)
            {
                migrate(node);
                text = node.ToJsonString();
            }
            var strict = new JsonSerializerOptions(ToolkitJson.Options) { UnmappedMemberHandling
                = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow };
            return JsonSerializer.Deserialize<T>(text,
                strict) ?? throw new OptionException($"{path} holds no options.");
        }
        catch (JsonException e)
        {
            throw new OptionException(
                $"{path}: {e.Message} Valid options: {OptionSchema.ValidNames(OptionSchema.For<T>())}.", e);
        }
    }

    private static JsonNode? Convert(OptionSpec spec, string? text)
    {
        var type = spec.ValueType;
        if (text is null && !spec.IsFlag) throw new OptionException($"{spec.Name} needs a value.");
        if (text is not null && text.Length == 0
            && type != typeof(string)) throw new OptionException($"{spec.Name} needs a value.");
        if (text == "none"
            && new System.Reflection.NullabilityInfoContext().Create(
                spec.Path[^1]).WriteState == System.Reflection.NullabilityState.Nullable)
            return null;   // an optional setting switched off
        if (type == typeof(string)) return JsonValue.Create(text);
        if (type == typeof(bool))
            return text is null ? true : bool.TryParse(text,
                out var b) ? b : throw new OptionException($"{spec.Name} takes true or false (got '{text}').");
        if (type == typeof(int))
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture,
                out var i) ? i : throw Malformed(spec, text, "an integer");
        if (type == typeof(long))
            return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture,
                out var l) ? l : throw Malformed(spec, text, "an integer");
        if (type == typeof(double))
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture,
                out var d) && double.IsFinite(d) ? d : throw Malformed(spec, text, "a number");
        if (type.IsEnum)
        {
            var name = spec.Choices.FirstOrDefault(c => string.Equals(c, text, StringComparison.OrdinalIgnoreCase))
                ?? Enum.GetNames(type).Where(n => string.Equals(n, text,
                    StringComparison.OrdinalIgnoreCase)).Select(n => OptionSpec.EnumName(type, Enum.Parse(type,
                        n))).FirstOrDefault()
                ?? throw new OptionException(
                    $"{spec.Name} must be one of {string.Join(", ", spec.Choices)} (got '{text}').");
            return JsonValue.Create(name);
        }
        throw new InvalidOperationException($"Option {spec.Name} has type {type.Name}, which options do not support.");
    }

    private static OptionException Malformed(OptionSpec spec, string? text,
        string expected) => new($"{spec.Name} takes {expected} (got '{text}').");

    private static string JsonName(string property) => ToolkitJson.Options.PropertyNamingPolicy!.ConvertName(property);
}
