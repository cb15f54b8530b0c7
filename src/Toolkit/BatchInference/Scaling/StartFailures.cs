namespace Toolkit.BatchInference;

/// <summary>
/// Workers that end before doing any work (a shard committed or a record moved: one that joins and then cannot load
/// its model has not started), in a row: each holds the next start back twice as long (1 s, 2 s, 4 s... at most 30 s),
/// and <see cref="Limit"/> of them fail the job with the last one's own error, instead of respawning a worker that
/// cannot start for ever. A worker that has worked resets the count.
/// </summary>
internal sealed class StartFailures(TimeProvider? clock = null)
{
    /// <summary>Consecutive start failures that fail the job.</summary>
    public const int Limit = 5;

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private DateTimeOffset _notBefore = DateTimeOffset.MinValue;

    /// <summary>Start failures since the last worker that joined.</summary>
    public int InARow { get; private set; }

    /// <summary>Why the job must fail (the workers cannot start), or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>True when a worker may be started now.</summary>
    public bool CanStart => Failure is null && _clock.GetUtcNow() >= _notBefore;

    /// <summary>A worker ended; <paramref name="worked"/> when it had done work, otherwise <paramref name="error"/> is
    /// what it said.</summary>
    public void Ended(bool worked, string error)
    {
        if (worked)
        {
            InARow = 0;
            return;
        }
        InARow++;
        _notBefore = _clock.GetUtcNow() + TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, InARow - 1)));
        if (InARow >= Limit)
            Failure = $"{InARow} workers in a row ended before doing any work; the last said: {error}";
    }
}
