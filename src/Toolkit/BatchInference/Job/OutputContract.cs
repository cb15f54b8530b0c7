using System.Security.Cryptography;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// What a job leaves in <c>output/</c> for other tools, as Spark and Hadoop jobs do: when every shard is done, a
/// <c>manifest.json</c> (each committed part with its record count and SHA-256, and the quarantine parts) and an empty
/// <c>_SUCCESS</c>. Parts never committed and temporary files are removed when a job resumes and when it finishes, so a
/// reader that globs the folder after <c>_SUCCESS</c> sees every record exactly once.
/// </summary>
internal static class OutputContract
{
    /// <summary>The marker of a job whose every shard is done.</summary>
    public const string SuccessFile = "_SUCCESS";

    /// <summary>The list of committed parts.</summary>
    public const string ManifestFile = "manifest.json";

    /// <summary>
    /// Makes the job folder's <c>output/</c> a link to <paramref name="output"/> (<c>--output</c>), which must be new
    /// or empty; a resumed job finds its link in place. Nothing happens without <paramref name="output"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The folder holds files already, or the job's output is
    /// elsewhere.</exception>
    public static void Link(string folder, string? output)
    {
        if (output is null) return;
        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(output));
        var link = new DirectoryInfo(Path.Combine(folder, InferLayout.OutputFolder));
        if (link.LinkTarget is { } existing)
        {
            var resolved = Path.TrimEndingDirectorySeparator(Path.GetFullPath(existing, folder));
            if (resolved == target) return;
            throw new ArgumentException($"this job's output is {resolved}, not {target}", "Output");
        }
        if (link.Exists) throw new ArgumentException(
            $"this job's output is its own folder {link.FullName}; it cannot move to {target}", "Output");
        CheckEmpty(target);
        Directory.CreateDirectory(target);
        Directory.CreateSymbolicLink(link.FullName, target);
        Runtime.FolderSync.Flush(folder);
    }

    /// <summary>Throws unless <paramref name="output"/> is new or empty (a new job's <c>--output</c>).</summary>
    /// <exception cref="ArgumentException">It holds files.</exception>
    public static void CheckEmpty(string output)
    {
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).FirstOrDefault() is { } first)
            throw new ArgumentException(
                $"{output} holds files already ({Path.GetFileName(first)}); name a new or empty folder", "Output");
    }

    /// <summary>A job (re)starts: its output is not final any more, and what no commit names goes.</summary>
    /// <returns>The files removed.</returns>
    public static int Reopen(string folder)
    {
        var output = Path.Combine(folder, InferLayout.OutputFolder);
        foreach (var marker in new[] { SuccessFile, ManifestFile }) AtomicFile.Delete(Path.Combine(output, marker));
        return Tidy(folder, keepLeased: true);
    }

    /// <summary>
    /// Removes parts no commit names and temporary files left by writers that died. With
    /// <paramref name="keepLeased"/> (a coordinator that has just adopted its predecessor's leases), the files of
    /// shards still leased stay: their workers may be writing them.
    /// </summary>
    /// <returns>The files removed.</returns>
    public static int Tidy(string folder, bool keepLeased = false) =>
        InferOutput.RemoveUncommitted(folder, temporaries: true, keepLeased);

    /// <summary>Writes the manifest of a finished job, and <c>_SUCCESS</c> when no shard failed.</summary>
    public static OutputManifest Seal(string folder, string jobId, IReadOnlyList<FailedShard> failed)
    {
        var committed = InferOutput.Committed(folder);
        var parts = committed.Select(s => Describe(folder, s.Output!, s.Records - s.Quarantined)).ToList();
        var quarantine = committed.Where(s => s.Quarantined > 0)
            .Select(s => Describe(folder, InferLayout.QuarantinePartOf(s.Output!), s.Quarantined)).ToList();
        var manifest = new OutputManifest(jobId, parts.Sum(p => p.Records), quarantine.Sum(p => p.Records), parts,
            quarantine, [.. failed.Select(f => f.Shard)]);
        var output = Path.Combine(folder, InferLayout.OutputFolder);
        AtomicFile.Write(Path.Combine(output, ManifestFile),
            s => System.Text.Json.JsonSerializer.Serialize(s, manifest, ToolkitJson.Options), "coordinator");
        if (failed.Count == 0) AtomicFile.Write(Path.Combine(output, SuccessFile), _ => { }, "coordinator");
        return manifest;
    }

    private static ManifestPart Describe(string folder, string part, long records)
    {
        using var file = File.OpenRead(Path.Combine(folder, part));
        return new ManifestPart(part.Replace('\\', '/'), records, Convert.ToHexStringLower(SHA256.HashData(file)));
    }
}

/// <summary>A finished job's <c>output/manifest.json</c>.</summary>
/// <param name="Job">The job's id.</param>
/// <param name="Records">Records in the output parts.</param>
/// <param name="Quarantined">Records in the quarantine parts.</param>
/// <param name="Parts">Every committed output part, in input order.</param>
/// <param name="Quarantine">Every quarantine part.</param>
/// <param name="FailedShards">Shards that failed past the retry cap (no part; <c>_SUCCESS</c> is not written).</param>
internal sealed record OutputManifest(string Job, long Records, long Quarantined, IReadOnlyList<ManifestPart> Parts,
    IReadOnlyList<ManifestPart> Quarantine, IReadOnlyList<long> FailedShards);

/// <summary>One part of a manifest: its path in the job folder, its records and the SHA-256 of its bytes.</summary>
internal sealed record ManifestPart(string Path, long Records, string Sha256);
