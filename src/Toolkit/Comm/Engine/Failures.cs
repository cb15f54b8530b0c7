namespace Toolkit.Comm;

/// <summary>Which of several failures of cooperating ranks or threads to report.</summary>
internal static class Failures
{
    /// <summary>
    /// The root cause: the first failure that is not a cancellation (a cancellation is how the others were woken after
    /// it), else the first cancellation; null when there is none.
    /// </summary>
    public static Exception? RootCause(IEnumerable<Exception> failures)
    {
        var list = failures.ToList();
        return list.FirstOrDefault(f => f is not OperationCanceledException) ?? list.FirstOrDefault();
    }
}
