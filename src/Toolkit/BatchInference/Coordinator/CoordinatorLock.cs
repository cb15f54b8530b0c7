using System.Globalization;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// The one coordinator of a job folder: <c>coordinator.lock</c> names its host, process id and the process's start
/// time, and the time it was last renewed (every <see cref="RenewEvery"/>). It appears whole (written beside it, then
/// linked into place only if no lock is there). A second coordinator on the folder is refused while the holder lives;
/// a lock is taken over when its process is gone from this host, or, from any host, when it has not been renewed for
/// <see cref="StaleAfter"/> (its coordinator was killed: a Kubernetes pod on another node).
/// </summary>
internal sealed class CoordinatorLock : IDisposable
{
    /// <summary>How often the holder renews the lock.</summary>
    public static readonly TimeSpan RenewEvery = TimeSpan.FromSeconds(10);

    /// <summary>A lock not renewed for this long is stale, whoever took it.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(60);

    private readonly string _path;
    private readonly Holder _mine;
    private readonly Timer _renewal;

    private CoordinatorLock(string path, Holder mine)
    {
        (_path, _mine) = (path, mine);
        _renewal = new Timer(_ => Renew(), null, RenewEvery, RenewEvery);
    }

    /// <summary>Takes the lock of <paramref name="folder"/>.</summary>
    /// <param name="folder">The job folder.</param>
    /// <param name="log">Told when a stale lock is taken over.</param>
    /// <exception cref="Jobs.JobFailedException">Another live coordinator holds the folder.</exception>
    public static CoordinatorLock Acquire(string folder, Action<string>? log = null)
    {
        var path = Path.Combine(folder, InferLayout.LockFile);
        var mine = new Holder(Environment.MachineName, Environment.ProcessId, StartTime(Environment.ProcessId),
            DateTimeOffset.UtcNow);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (TryCreate(path, mine)) return new CoordinatorLock(path, mine);
            var text = ReadText(path);
            if (text is null) continue;   // released meanwhile
            var holder = Parse(text);
            var age = holder is null ? TimeSpan.MaxValue : DateTimeOffset.UtcNow - holder.Renewed;
            var gone = holder is not null && holder.Host == mine.Host && !Alive(holder);
            if (holder is not null && !gone && age < StaleAfter)
                throw new Jobs.JobFailedException(
                    $"{folder} is coordinated by process {holder.ProcessId} on {holder.Host}, which renewed its " +
                    $"{InferLayout.LockFile} {age.TotalSeconds:F0} s ago: one coordinator per job folder. Stop that " +
                    $"one first (a lock not renewed for {StaleAfter.TotalSeconds:F0} s is taken over).");
            log?.Invoke(holder is null ? $"taking over an unreadable {InferLayout.LockFile}"
                : $"taking over the lock of process {holder.ProcessId} on {holder.Host}, which " +
                    (gone ? "is gone" : $"has not renewed it for {age.TotalSeconds:F0} s"));
            if (ReadText(path) == text) File.Delete(path);   // only the stale lock that was read
        }
        throw new Jobs.JobFailedException($"{path}: another coordinator keeps taking the lock");
    }

    /// <summary>Writes the lock beside its place and links it in, unless a lock is there.</summary>
    private static bool TryCreate(string path, Holder holder)
    {
        var temporary = Beside(path, holder);
        try
        {
            File.Move(temporary, path, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(path)) { return false; }
        finally { File.Delete(temporary); }
    }

    /// <summary>Writes <paramref name="holder"/> to a temporary file beside <paramref name="path"/>; returns
    /// it.</summary>
    private static string Beside(string path, Holder holder)
    {
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, System.Text.Json.JsonSerializer.Serialize(holder, ToolkitJson.Compact));
        return temporary;
    }

    /// <summary>Whether the lock file still names this coordinator (another may have taken a stale one over).</summary>
    private bool StillMine() => ReadText(_path) is { } text && Parse(text) is { } holder
        && (holder.Host, holder.ProcessId, holder.Started) == (_mine.Host, _mine.ProcessId, _mine.Started);

    /// <summary>Rewrites the lock with the time now, while it is still this coordinator's.</summary>
    private void Renew()
    {
        try
        {
            if (StillMine())
                File.Move(Beside(_path, _mine with { Renewed = DateTimeOffset.UtcNow }), _path, overwrite: true);
        }
        catch (IOException) { }   // the next renewal tries again
    }

    /// <summary>Whether the process a lock names is still the one that took it (a reused pid is not).</summary>
    private static bool Alive(Holder holder) =>
        StartTime(holder.ProcessId) is { } started && started == holder.Started;

    /// <summary>A process's start time in clock ticks since boot (from /proc), or null when it is gone; on systems
    /// without /proc, 0 while it exists.</summary>
    private static long? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); return 0; }
            catch (ArgumentException) { return null; }
        }
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // fields after the command (which may hold spaces) start after its closing parenthesis; start time is 22nd
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }

    private static string? ReadText(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return null; }
    }

    private static Holder? Parse(string text)
    {
        try { return System.Text.Json.JsonSerializer.Deserialize<Holder>(text, ToolkitJson.Options); }
        catch (System.Text.Json.JsonException) { return null; }
    }

    /// <summary>Releases the lock, if it is still this coordinator's.</summary>
    public void Dispose()
    {
        _renewal.Dispose();
        try
        {
            if (StillMine()) File.Delete(_path);
        }
        catch (IOException) { }
    }

    /// <summary>Who holds a lock, and when they last said so.</summary>
    private sealed record Holder(string Host, int ProcessId, long? Started, DateTimeOffset Renewed);
}
