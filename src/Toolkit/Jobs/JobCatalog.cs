namespace Toolkit.Jobs;

/// <summary>
/// Every job kind the toolkit can run, found once by reflection over the library (each <see cref="IRankJob"/> with a
/// parameterless constructor), so the rank entry point dispatches on a run folder's kind without the jobs layer knowing
/// any subsystem.
/// </summary>
internal static class JobCatalog
{
    private static readonly Lazy<IReadOnlyDictionary<string, IRankJob>> Jobs = new(Discover);

    /// <summary>The known kinds, sorted.</summary>
    public static IReadOnlyList<string> Kinds => [.. Jobs.Value.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The job of <paramref name="kind"/>.</summary>
    /// <exception cref="InvalidDataException">Unknown kind (a run folder from another toolkit version); the message
    /// lists the known ones.</exception>
    public static IRankJob Find(string kind) => Jobs.Value.TryGetValue(kind, out var job)
        ? job
        : throw new InvalidDataException(
            $"Unknown job kind '{kind}' (written by another toolkit version?). This toolkit runs: {string.Join(", " +
                "", Kinds)}.");

    private static IReadOnlyDictionary<string, IRankJob> Discover()
    {
        var jobs = typeof(JobCatalog).Assembly.GetTypes()
            .Where(t => typeof(IRankJob).IsAssignableFrom(t) && t is { IsAbstract: false,
                IsInterface: false } && t.GetConstructor(Type.EmptyTypes) is not null)
            .Select(t => (IRankJob)Activator.CreateInstance(t)!)
            .ToList();
        var duplicate = jobs.GroupBy(j => j.Kind).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidOperationException($"Two jobs share the kind '{duplicate.Key}'.");
        return jobs.ToDictionary(j => j.Kind, StringComparer.Ordinal);
    }
}
