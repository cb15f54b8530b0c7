namespace Toolkit.Options;

/// <summary>
/// A user's option is unknown or its value malformed or out of range. The message is one line that names the option,
/// the value and what is valid; front ends print it as is (the CLI exits 2).
/// </summary>
public sealed class OptionException : ArgumentException
{
    /// <summary>Creates the exception with a complete, one-line message.</summary>
    public OptionException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>The option is not one of <paramref name="specs"/>.</summary>
    internal static OptionException Unknown(string name, IReadOnlyList<OptionSpec> specs, string where) =>
        new(RetiredOptions.Explain(name, r => specs.Any(s => s.Name == r))
            ?? $"unknown option '{name}' for {where}. Valid options: {OptionSchema.ValidNames(specs)}.");

    /// <summary>
    /// Turns a validation failure of an options record (an <see cref="ArgumentException"/> whose
    /// <see cref="ArgumentException.ParamName"/> is a property name) into a message naming the option.
    /// </summary>
    internal static string Describe(Exception exception, IReadOnlyList<OptionSpec> specs)
    {
        if (exception is OptionException) return exception.Message;
        if (exception is not ArgumentException { ParamName: { } parameter } argument) return exception.Message;
        var spec = specs.FirstOrDefault(s => string.Equals(s.Path[^1].Name, parameter,
            StringComparison.OrdinalIgnoreCase));
        var message = argument.Message.Split('\n')[0].Replace($" (Parameter '{parameter}')", "",
            StringComparison.Ordinal);
        if (spec is null) return message;
        var actual = argument is ArgumentOutOfRangeException { ActualValue: { } v } ? $" {OptionSpec.Text(v)}" : "";
        return $"{spec.Name}{actual}: {message}";
    }
}
