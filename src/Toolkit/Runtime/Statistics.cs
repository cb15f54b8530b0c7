namespace Toolkit.Runtime;

/// <summary>Small summaries of measurements.</summary>
internal static class Statistics
{
    /// <summary>The median (for an even count, the upper of the two middle values: always a measured value).</summary>
    /// <exception cref="ArgumentException">No values.</exception>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count > 0 ? sorted[sorted.Count / 2] : throw new ArgumentException("The median of no values.",
            nameof(values));
    }

    /// <summary>The median, for an even count the mean of the two middle values (of two values, their mean, not the
    /// larger).</summary>
    /// <exception cref="ArgumentException">No values.</exception>
    public static double MidpointMedian(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0) throw new ArgumentException("The median of no values.", nameof(values));
        var middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
