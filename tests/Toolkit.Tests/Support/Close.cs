namespace Toolkit.Tests;

/// <summary>Comparisons with a relative tolerance (rounding to N decimals flips when two close values straddle a
/// rounding boundary).</summary>
public static class Close
{
    /// <summary>Asserts |expected - actual| &lt;= tolerance · |expected|.</summary>
    public static void Relative(double expected, double actual, double tolerance = 1e-5, string what = "value")
    {
        var error = Math.Abs(expected - actual) / Math.Max(Math.Abs(expected), double.Epsilon);
        Assert.True(error <= tolerance,
            $"{what}: expected {expected:R}, got {actual:R}, relative error {error:E2} > {tolerance:E0}");
    }

    /// <summary>Asserts two loss trajectories agree step by step (same length, same step indices, losses within a
    /// relative tolerance).</summary>
    public static void Losses(IReadOnlyList<global::Toolkit.Paro.StepLoss> expected,
        IReadOnlyList<global::Toolkit.Paro.StepLoss> actual, double tolerance = 1e-5)
    {
        Assert.Equal(expected.Select(s => s.Step), actual.Select(s => s.Step));
        for (var i = 0; i < expected.Count; i++) Relative(expected[i].Loss, actual[i].Loss, tolerance,
            $"loss at step {expected[i].Step}");
    }
}
