namespace Toolkit.Runtime;

/// <summary>Per-user folders the toolkit writes to.</summary>
internal static class ToolkitPaths
{
    /// <summary>
    /// A per-user cache folder: <c>$TOOLKIT_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/toolkit</c>, else
    /// <c>~/.cache/toolkit</c>, with <paramref name="name"/> appended. Created if missing.
    /// </summary>
    public static string CacheDirectory(string name)
    {
        var root = Environment.GetEnvironmentVariable("TOOLKIT_CACHE_DIR");
        if (string.IsNullOrEmpty(root))
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            root = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "toolkit")
                : Path.Combine(xdg, "toolkit");
        }
        var dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
