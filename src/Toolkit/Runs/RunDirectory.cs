using System.Globalization;
using System.Text.Json;

namespace Toolkit.Runs;

/// <summary>
/// A job's folder, <c>runs/&lt;id&gt;/</c>: <c>config.json</c> (the resolved configuration), <c>metrics.jsonl</c> (one
/// JSON object per line: time, step, rank, name, value), <c>log.txt</c>, and later checkpoints and reports. Lines are
/// flushed as they are written so notebooks and the CLI can follow a running job with <see cref="RunReader"/>.
/// Thread-safe: ranks running as threads share one instance.
/// </summary>
internal sealed class RunDirectory : IDisposable
{
    /// <summary>File name of the metrics stream.</summary>
    public const string MetricsFile = "metrics.jsonl";
    /// <summary>File name of the resolved configuration.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>File name of the log.</summary>
    public const string LogFile = "log.txt";

    /// <summary>Where runs go unless a job says otherwise: <c>$TOOLKIT_RUNS_DIR</c> if set, else <c>runs</c> under the
    /// current directory.</summary>
    public static string DefaultRoot
        => Environment.GetEnvironmentVariable("TOOLKIT_RUNS_DIR") is { Length: > 0 } root ? root : "runs";

    private readonly Lock _gate = new();
    private readonly StreamWriter _metrics;
    private readonly StreamWriter _log;

    private RunDirectory(string path, int? rank = null)
    {
        Path = path;
        Id = System.IO.Path.GetFileName(path);
        // Ranks in separate processes each write their own stream; RunReader merges metrics*.jsonl.
        _metrics = Open(rank is { } r ? $"metrics.rank-{r}.jsonl" : MetricsFile);
        _log = Open(rank is { } q ? $"log.rank-{q}.txt" : LogFile);
    }

    /// <summary>Opens an existing run folder for one rank of a multi-process job.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder is not a run folder.</exception>
    public static RunDirectory Attach(string path, int rank) =>
        System.IO.File.Exists(System.IO.Path.Combine(path, ConfigFile))
            ? new RunDirectory(System.IO.Path.GetFullPath(path), rank)
            : throw new DirectoryNotFoundException($"{path} is not a run folder: it has no {ConfigFile}.");

    /// <summary>Reopens an existing run folder to append to its metrics and log (a resumed job).</summary>
    /// <exception cref="DirectoryNotFoundException">The folder is not a run folder.</exception>
    public static RunDirectory Reopen(string path) =>
        System.IO.File.Exists(System.IO.Path.Combine(path, ConfigFile))
            ? new RunDirectory(System.IO.Path.GetFullPath(path))
            : throw new DirectoryNotFoundException($"{path} is not a run folder: it has no {ConfigFile}.");

    /// <summary>The run's identifier (its folder name).</summary>
    public string Id { get; }

    /// <summary>The run's folder.</summary>
    public string Path { get; }

    /// <summary>Creates <c>&lt;root&gt;/&lt;kind&gt;-&lt;UTC time&gt;-&lt;random&gt;</c> and writes the
    /// configuration.</summary>
    /// <param name="root">Folder holding runs (default <c>runs</c> under the current directory).</param>
    /// <param name="kind">A short job name, e.g. <c>quickstart</c> or <c>paro-train</c>.</param>
    /// <param name="config">The resolved configuration, serialised as JSON.</param>
    public static RunDirectory Create(string root, string kind, object config) =>
        CreateNamed(root, $"{kind}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Random.Shared.Next(0x10000):x4}", config);

    /// <summary>Creates <c>&lt;root&gt;/&lt;id&gt;</c> (a name the caller chose) and writes the
    /// configuration.</summary>
    public static RunDirectory CreateNamed(string root, string id, object config)
    {
        var path = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, id));
        Directory.CreateDirectory(path);
        System.IO.File.WriteAllText(System.IO.Path.Combine(path, ConfigFile), JsonSerializer.Serialize(config,
            config.GetType(), Runtime.ToolkitJson.Options));
        return new RunDirectory(path);
    }

    /// <summary>Appends one metric sample.</summary>
    public void Metric(int step, int rank, string name, double value) =>
        Write(_metrics, JsonSerializer.Serialize(new MetricPoint(DateTimeOffset.UtcNow, step, rank, name, value),
            Runtime.ToolkitJson.Compact));

    /// <summary>Appends a timestamped log line.</summary>
    public void Log(string message) =>
        Write(_log, $"{DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture)} {message}");

    /// <summary>A path inside the run folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _metrics.Dispose();
            _log.Dispose();
        }
    }

    private void Write(StreamWriter writer, string line)
    {
        lock (_gate)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }

    private StreamWriter Open(string name) =>
        new(new FileStream(File(name), FileMode.Append, FileAccess.Write, FileShare.Read)) { NewLine = "\n" };
}

/// <summary>One sample of the metrics stream.</summary>
/// <param name="Time">When it was recorded (UTC).</param>
/// <param name="Step">Training step (or another monotone counter).</param>
/// <param name="Rank">The rank that recorded it.</param>
/// <param name="Name">Metric name, e.g. <c>loss</c>, <c>comm.intra_bytes</c>.</param>
/// <param name="Value">The value.</param>
public sealed record MetricPoint(DateTimeOffset Time, int Step, int Rank, string Name, double Value);
