namespace Toolkit.Checkpoints;

/// <summary>
/// Where a run's checkpoints live (<c>checkpoints/step-K</c>), and how one appears: every rank writes into a staging
/// folder (<c>checkpoints/.step-K.partial</c>), then rank 0 flushes it to disk and renames it into place, so a
/// <c>step-K</c> folder is always whole; the last <c>--keep-checkpoints</c> are kept. Resuming from a run folder takes
/// its latest checkpoint that is intact, falling back to the one before (with a warning) when the latest is damaged.
/// </summary>
internal static class CheckpointFolders
{
    /// <summary>The folder of a run's checkpoints.</summary>
    public const string Folder = "checkpoints";

    /// <summary>The published checkpoint of step <paramref name="step"/>.</summary>
    public static string Final(string runPath, int step) => Path.Combine(runPath, Folder, $"step-{step}");

    /// <summary>Where the ranks write the checkpoint of step <paramref name="step"/> before it is published.</summary>
    public static string Staging(string runPath, int step) =>
        Path.Combine(runPath, Folder, $".step-{step}.partial");

    /// <summary>
    /// Rank 0, once every rank has written: flushes the staging folder's files, renames it to <c>step-K</c> (replacing
    /// an older one of that step), flushes the folder, and removes all but the newest <paramref name="keep"/>
    /// checkpoints (0: keeps all).
    /// </summary>
    /// <returns>The published folder.</returns>
    public static string Publish(string runPath, int step, int keep, Action<string>? log = null)
    {
        var (staging, final) = (Staging(runPath, step), Final(runPath, step));
        foreach (var file in Directory.GetFiles(staging, "*", SearchOption.AllDirectories))
            using (var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
                stream.Flush(flushToDisk: true);
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(staging, final);
        Runtime.FolderSync.Flush(Path.Combine(runPath, Folder));
        if (keep > 0)
            foreach (var (old, path) in List(runPath).Skip(keep))
            {
                Directory.Delete(path, recursive: true);
                log?.Invoke($"removed the checkpoint of step {old} (--keep-checkpoints {keep})");
            }
        return final;
    }

    /// <summary>The job step a published checkpoint folder (<c>step-K</c>) holds.</summary>
    /// <exception cref="FormatException">The folder is not named <c>step-K</c>.</exception>
    public static int StepOf(string checkpoint) =>
        int.Parse(Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpoint))["step-".Length..],
            System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A run's published checkpoints, newest first.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string runPath)
    {
        var folder = Path.Combine(runPath, Folder);
        if (!Directory.Exists(folder)) return [];
        return [.. Directory.GetDirectories(folder, "step-*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)["step-".Length..], out var s), Step: s, Path: d))
            .Where(c => c.Ok).Select(c => (c.Step, c.Path)).OrderByDescending(c => c.Step)];
    }

    /// <summary>
    /// The checkpoint to resume from: <paramref name="folder"/> itself when it is one, or, for a run folder, its
    /// newest intact checkpoint; each damaged newer one is reported to <paramref name="warn"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Neither a checkpoint nor a run folder with an intact checkpoint.</exception>
    public static string Resolve(string folder, Action<string>? warn = null)
    {
        if (File.Exists(Path.Combine(folder, CheckpointManifest.FileName))) return folder;
        var found = List(folder);
        if (found.Count == 0) throw new ArgumentException(
            $"{folder} is neither a checkpoint (it has no {CheckpointManifest.FileName}) nor a run folder with " +
                $"checkpoints ({Folder}/step-K)");
        foreach (var (step, path) in found)
        {
            if (Damage(path) is not { } damage) return path;
            warn?.Invoke($"warning: the checkpoint of step {step} is damaged ({damage}); trying the one before");
        }
        throw new ArgumentException($"every checkpoint of {folder} is damaged; see the warnings");
    }

    /// <summary>Why a checkpoint cannot be loaded (its manifest or a rank file missing, truncated or corrupt), or
    /// null when it is intact.</summary>
    public static string? Damage(string checkpoint)
    {
        try
        {
            var manifest = CheckpointManifest.Read(checkpoint);
            foreach (var shard in manifest.Shards) CheckpointFiles.Verify(Path.Combine(checkpoint, shard.File), shard);
            return null;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or System.Text.Json.JsonException
            or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }
}
