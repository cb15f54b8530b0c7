using System.Text;
using System.Text.Json;

namespace Toolkit.Runs;

/// <summary>
/// Reads a run folder, finished or still running: <see cref="ReadNew"/> returns the metric lines appended since the
/// last call, ignoring a last line that is still being written. A corrupt line is reported with its line number instead
/// of being skipped silently.
/// </summary>
public sealed class RunReader
{
    private readonly Dictionary<string, (long Offset, int Line)> _positions = new(StringComparer.Ordinal);

    /// <summary>Opens a run folder.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist or is not a run (no
    /// config.json).</exception>
    public RunReader(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(System.IO.Path.Combine(Path, RunDirectory.ConfigFile)))
            throw new DirectoryNotFoundException($"{Path} is not a run folder: it has no {RunDirectory.ConfigFile}.");
    }

    /// <summary>The run folder.</summary>
    public string Path { get; }

    /// <summary>The run's identifier.</summary>
    public string Id => System.IO.Path.GetFileName(Path);

    /// <summary>The resolved configuration as JSON.</summary>
    public JsonDocument ReadConfig() => JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(Path,
        RunDirectory.ConfigFile)));

    /// <summary>Every metric recorded so far.</summary>
    public static IReadOnlyList<MetricPoint> ReadAll(string path) => new RunReader(path).ReadNew();

    /// <summary>Metric lines completed since the previous call, from <c>metrics.jsonl</c> and any per-rank
    /// <c>metrics.rank-R.jsonl</c>.</summary>
    /// <exception cref="InvalidDataException">A complete line is not a metric; the message gives the file and line
    /// number.</exception>
    public IReadOnlyList<MetricPoint> ReadNew()
    {
        var result = new List<MetricPoint>();
        foreach (var file in Directory.EnumerateFiles(Path, "metrics*.jsonl").Order(StringComparer.Ordinal))
            result.AddRange(ReadFile(file));
        return result;
    }

    private List<MetricPoint> ReadFile(string file)
    {
        var (offset, line) = _positions.GetValueOrDefault(file);
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(offset, SeekOrigin.Begin);
        var bytes = new byte[stream.Length - offset];
        stream.ReadExactly(bytes);
        var complete = Array.LastIndexOf(bytes, (byte)'\n') + 1;   // a partial last line waits for the next call
        var result = new List<MetricPoint>();
        foreach (var text in Encoding.UTF8.GetString(bytes, 0, complete).Split('\n',
            StringSplitOptions.RemoveEmptyEntries))
        {
            line++;
            try
            {
                result.Add(JsonSerializer.Deserialize<MetricPoint>(text,
                    Runtime.ToolkitJson.Compact) ?? throw new JsonException("null"));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{file} line {line} is not a metric record ({e.Message}).", e);
            }
        }
        _positions[file] = (offset + complete, line);
        return result;
    }
}
