using Toolkit.Options;

namespace Toolkit.BatchInference;

/// <summary>The options of <c>toolkit infer worker</c>: a worker joining a running job.</summary>
internal sealed record InferWorkerOptions : Jobs.ICheckedOptions
{
    /// <summary>The coordinator's address (<c>http://host:port</c>, as in the job folder's coordinator.json).</summary>
    [Option("The coordinator's address (http://host:port, as written in the job folder's coordinator.json).")]
    public string? Coordinator { get; init; }

    /// <summary>A file holding the job's token (the job folder's <c>token</c>); null: the
    /// <c>TOOLKIT_INFER_TOKEN</c> environment variable. The token itself is never an option: command lines are
    /// public.</summary>
    [Option("A file holding the job's token, e.g. the job folder's token file (default: the TOOLKIT_INFER_TOKEN " +
        "environment variable).")]
    public string? TokenFile { get; init; }

    /// <summary>The SHA-256 fingerprint of the coordinator's certificate, for an https address.</summary>
    [Option("The SHA-256 fingerprint of the coordinator's TLS certificate, for an https:// address (as written in " +
        "the job folder's coordinator.json; with --job-folder, read from there when not given).")]
    public string? Fingerprint { get; init; }

    /// <summary>The job folder, when this worker can see it: a worker that finds the job finished there (its status
    /// snapshot), at start or once the coordinator is gone, ends with success rather than an error.</summary>
    [Option("The job's folder, if this worker sees it: a finished job there (a coordinator that has ended) makes " +
        "the worker exit 0 instead of failing (Kubernetes work-queue pods).")]
    public string? JobFolder { get; init; }

    /// <summary>This worker's name; null: host-pid.</summary>
    [Option("This worker's name (default: host-pid).")]
    public string? Id { get; init; }

    /// <summary>Seconds to keep retrying an unreachable coordinator. Default 30.</summary>
    [Option("Seconds to keep retrying an unreachable coordinator before giving up.")]
    public double Grace { get; init; } = 30;

    /// <inheritdoc/>
    public void Check()
    {
        if (string.IsNullOrWhiteSpace(Coordinator))
            throw new ArgumentException(
                "is required: the coordinator's address, from the job folder's coordinator.json",
                nameof(Coordinator));
        if (!(Grace >= 0)) throw new ArgumentOutOfRangeException(nameof(Grace), Grace, "must be 0 or more seconds");
    }
}
