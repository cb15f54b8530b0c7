namespace Toolkit.Runtime;

/// <summary>Small summaries of measurements.</summary>
public static class Statistics
{
    /// <summary>The median (for an even count, the upper of the two middle values: always a measured value).</summary>
    /// <exception cref="ArgumentException">No values.</exception>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count > 0 ? sorted[sorted.Count / 2] : throw new ArgumentException("The median of no values.", nameof(values));
    }
}
