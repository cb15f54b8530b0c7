using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>Makes a folder's entries durable: after a rename into it, the rename survives a power loss.</summary>
internal static partial class FolderSync
{
    /// <summary>fsync of the folder (Linux and macOS; Windows' renames are durable enough and have no folder
    /// handles).</summary>
    public static void Flush(string folder)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        var fd = Open(folder, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try { _ = Fsync(fd); }
        finally { _ = Close(fd); }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
