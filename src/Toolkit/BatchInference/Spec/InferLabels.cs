namespace Toolkit.BatchInference;

/// <summary>The labels of a classify stage (<c>--labels</c>).</summary>
internal static class InferLabels
{
    /// <summary>The labels of a job's <c>--labels</c>, checked.</summary>
    /// <exception cref="ArgumentException">Fewer than two labels, an empty one, or a repeated one.</exception>
    public static IReadOnlyList<string> Check(IReadOnlyList<string> labels)
    {
        var trimmed = labels.Select(l => l.Trim()).ToList();
        const string name = nameof(InferModelOptions.Labels);
        if (trimmed.Count < 2)
            throw new ArgumentException(
                "a classify stage needs at least two labels (--labels \"sports,politics,science\")", name);
        if (trimmed.Any(l => l.Length == 0))
            throw new ArgumentException("a label is empty (two commas in a row?)", name);
        if (trimmed.Distinct(StringComparer.Ordinal).Count() != trimmed.Count)
            throw new ArgumentException("a label is repeated", name);
        return trimmed;
    }
}
