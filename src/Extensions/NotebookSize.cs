using System.Globalization;

namespace Toolkit.Interactive;

/// <summary>
/// The one setting that runs the notebooks smaller: with <c>TOOLKIT_NOTEBOOK_SIZE=small</c> (what the notebook tests
/// set) the magics cap the sizes a cell gives (steps, warm-up steps, seeds, prompts, samples) and
/// <see cref="Pick"/> returns its small value. It only shrinks; without it every notebook runs at its committed
/// settings, which are what a person runs.
/// </summary>
public static class NotebookSize
{
    /// <summary>The environment variable.</summary>
    public const string Variable = "TOOLKIT_NOTEBOOK_SIZE";

    // The most a cell gets of each size option when the notebooks run small.
    private static readonly Dictionary<string, int> Caps = new(StringComparer.Ordinal)
    {
        ["steps"] = 6, ["warmupSteps"] = 60, ["prompts"] = 8, ["samples"] = 4, ["evalEvery"] = 6,
    };

    /// <summary>True when the notebooks run small.</summary>
    /// <exception cref="ArgumentException">The variable holds another value than <c>small</c> (a magic shows it as
    /// its one error line).</exception>
    public static bool Small => Parse(Environment.GetEnvironmentVariable(Variable));

    /// <summary>The variable's value: unset or empty (full size) or <c>small</c>; anything else is refused, so a typo
    /// does not silently run the notebooks at full size.</summary>
    internal static bool Parse(string? value) => value switch
    {
        null or "" => false,
        "small" => true,
        _ => throw new ArgumentException(
            $"{Variable} is '{value}': set it to 'small' (the tests' smaller notebooks) or unset it (full size)."),
    };

    /// <summary><paramref name="full"/>, or the smaller of it and <paramref name="small"/> when the notebooks run
    /// small.</summary>
    public static int Pick(int full, int small) => Small ? Math.Min(full, small) : full;

    /// <summary>A magic option's value as the notebooks run: capped when small (a list of seeds keeps its
    /// first).</summary>
    /// <param name="key">The option's camelCase key (<c>warmupSteps</c>).</param>
    /// <param name="value">The value the cell gave.</param>
    /// <param name="small">Whether the notebooks run small (default: <see cref="Small"/>).</param>
    internal static string? Shrink(string key, string? value, bool? small = null)
    {
        if (!(small ?? Small) || value is null) return value;
        if (key == "seeds") return value.Split(',')[0];
        return Caps.TryGetValue(key, out var cap) && int.TryParse(value, NumberStyles.Integer,
            CultureInfo.InvariantCulture, out var n) && n > cap ? cap.ToString(CultureInfo.InvariantCulture) : value;
    }
}
