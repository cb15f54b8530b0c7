using System.Text.Json.Serialization;
using Toolkit.Options;

namespace Toolkit.Jobs;

/// <summary>
/// What a job asks Slurm for beyond its task layout: partition, time limit, account and any other sbatch/srun
/// arguments. Declared once, for every launcher that submits to Slurm: the job host's ranks
/// (<see cref="LaunchOptions"/>) and batch inference's coordinator and workers.
/// </summary>
public sealed partial record SlurmResources
{
    /// <summary>Partition. Default the cluster's default partition.</summary>
    [Option("Slurm (--launcher slurm): partition (default: the cluster's default).")]
    public string? Partition { get; init; }

    /// <summary>Time limit in Slurm's spelling (<c>30</c>, <c>1:00:00</c>, <c>1-0</c>). Default the
    /// partition's.</summary>
    [Option("Slurm (--launcher slurm): time limit in Slurm's spelling (minutes, or [D-]HH:MM:SS; default: the " +
        "partition's).")]
    public string? Time { get; init; }

    /// <summary>Account to charge. Default the user's default account.</summary>
    [Option("Slurm (--launcher slurm): account to charge (default: yours).")]
    public string? Account { get; init; }

    /// <summary>More sbatch/srun arguments, separated by spaces (<c>--qos=debug --exclusive</c>).</summary>
    [Option("Slurm (--launcher slurm): more sbatch (or srun) arguments, separated by spaces, e.g. \"--qos=debug " +
        "--exclusive\".")]
    public string? SlurmArgs { get; init; }

    /// <summary>The name of the first setting given, or null when none is (for "is a Slurm option" errors).</summary>
    [JsonIgnore]
    public string? FirstSet
        => Partition is not null ? nameof(Partition) : Time is not null ? nameof(Time) : Account is not null
            ? nameof(Account) : SlurmArgs is not null ? nameof(SlurmArgs) : null;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public SlurmResources Validate()
    {
        if (Time is { } time && !SlurmTime().IsMatch(time))
            throw new ArgumentOutOfRangeException(nameof(Time), time,
                "is not a Slurm time limit: use minutes (30), MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS");
        foreach (var (name, value) in new[] { (nameof(Partition), Partition), (nameof(Account), Account) })
            if (value is not null && (value.Length == 0 || value.Any(char.IsWhiteSpace)))
                throw new ArgumentOutOfRangeException(name, value, "must be one word");
        try
        {
            _ = SlurmClient.SplitArguments(SlurmArgs);
        }
        catch (FormatException e)
        {
            throw new ArgumentOutOfRangeException(nameof(SlurmArgs), SlurmArgs, e.Message);
        }
        return this;
    }

    [System.Text.RegularExpressions.GeneratedRegex(
        @"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}|" +
        @"infinite|unlimited|UNLIMITED|INFINITE)$")]
    private static partial System.Text.RegularExpressions.Regex SlurmTime();
}
