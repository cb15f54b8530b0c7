namespace Toolkit.BatchInference;

/// <summary>
/// Writes a file so that readers see either the old file or the whole new one: a temporary file next to it (named by
/// the writer's lease, so two writers never share one), flushed to disk, renamed over the target, then the folder
/// itself flushed so the rename survives a power loss.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="lines"/> (each a complete line without its newline) to
    /// <paramref name="path"/>.</summary>
    public static void WriteLines(string path, IEnumerable<ReadOnlyMemory<byte>> lines, string writer)
        => Write(path, file =>
    {
        foreach (var line in lines)
        {
            file.Write(line.Span);
            file.WriteByte((byte)'\n');
        }
    }, writer);

    /// <summary>Writes <paramref name="path"/> with what <paramref name="write"/> puts into the stream it is
    /// given.</summary>
    public static void Write(string path, Action<Stream> write, string writer) =>
        Write(path, write, writer, secret: false);

    /// <summary>
    /// Writes a secret (a token, a private key) to <paramref name="path"/> atomically: the temporary file is created
    /// readable and writable by its owner only (<see cref="CreateSecret"/>), so no reader ever finds the secret
    /// readable by others, nor half of it.
    /// </summary>
    public static void WriteSecret(string path, ReadOnlySpan<byte> secret)
    {
        var bytes = secret.ToArray();
        Write(path, file => file.Write(bytes), $"{Environment.ProcessId}", secret: true);
    }

    private static void Write(string path, Action<Stream> write, string writer, bool secret)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(path)}.{writer}.tmp");
        try
        {
            // a secret's temporary file is created anew, so that its mode is the one it is created with
            if (secret) File.Delete(temporary);
            using (var file = secret ? CreateSecret(temporary)
                : new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temporary); } catch (IOException) { }   // the write's own error is the one to report
            throw;
        }
        SyncFolder(folder);
    }

    /// <summary>Creates a new file (replacing none) whose mode is 0600 from the moment it exists (on Unix).</summary>
    internal static FileStream CreateSecret(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write,
            Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        return new FileStream(path, options);
    }

    /// <summary>Removes <paramref name="path"/> if it exists, durably.</summary>
    public static void Delete(string path)
    {
        if (!File.Exists(path)) return;
        File.Delete(path);
        SyncFolder(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    private static void SyncFolder(string folder) => Runtime.FolderSync.Flush(folder);
}
