namespace Toolkit.Runtime;

/// <summary>Finds the <c>toolkit</c> command's assembly, which <c>mpiexec</c> starts for multi-process jobs.</summary>
public static class ToolkitCli
{
    /// <summary>Environment variable with the path of <c>Toolkit.Cli.dll</c>.</summary>
    public const string OverrideVariable = "TOOLKIT_CLI";

    /// <summary>
    /// <c>$TOOLKIT_CLI</c>, else <c>Toolkit.Cli.dll</c> next to the running application, else a build of
    /// <c>src/Cli</c> in this or a parent folder of the current directory (Release before Debug).
    /// </summary>
    /// <exception cref="FileNotFoundException">Not found; the message says how to build it.</exception>
    public static string Find()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } custom)
            return File.Exists(custom) ? custom : throw new FileNotFoundException($"{OverrideVariable}={custom} does not exist.", custom);
        var local = Path.Combine(AppContext.BaseDirectory, "Toolkit.Cli.dll");
        if (File.Exists(local)) return local;
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            foreach (var configuration in new[] { "Release", "Debug" })
            {
                var candidate = Path.Combine(dir.FullName, "src", "Cli", "bin", configuration, "net10.0", "Toolkit.Cli.dll");
                if (File.Exists(candidate)) return candidate;
            }
        throw new FileNotFoundException($"Toolkit.Cli.dll was not found. Build it (dotnet build src/Cli -c Release) from the repository, or set {OverrideVariable} to its path.");
    }
}
