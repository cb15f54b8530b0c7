namespace Toolkit.Runtime;

/// <summary>Finds the MPICH launcher (hydra's <c>mpiexec</c>).</summary>
internal static class MpiLauncher
{
    /// <summary>Environment variable naming another launcher (for example <c>srun</c>).</summary>
    public const string OverrideVariable = "TOOLKIT_MPIEXEC";

    /// <summary>The launcher's path: <c>$TOOLKIT_MPIEXEC</c>, else <c>mpiexec.mpich</c>, else <c>mpiexec.hydra</c>,
    /// else <c>mpiexec</c> on PATH; null if none.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } custom) return custom;
        var path = Environment.GetEnvironmentVariable("PATH")?.Split(Path.PathSeparator,
            StringSplitOptions.RemoveEmptyEntries) ?? [];
        foreach (var name in new[] { "mpiexec.mpich", "mpiexec.hydra", "mpiexec" })
            foreach (var dir in path)
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }
}
