namespace Toolkit.Jobs;

/// <summary>
/// Finds the program mpiexec starts for each rank: the <c>toolkit</c> command's <c>rank</c> verb. Works from the
/// repository, from the installed .NET tool (<c>dotnet tool install LmToolkit.Cli</c>) and from a notebook whose kernel
/// has only the NuGet packages.
/// </summary>
public static class RankEntryPoint
{
    /// <summary>Environment variable with the path of <c>Toolkit.Cli.dll</c> or of a <c>toolkit</c>
    /// executable.</summary>
    public const string OverrideVariable = "TOOLKIT_CLI";

    /// <summary>
    /// The command line that starts a rank, without the verb: <c>$TOOLKIT_CLI</c>; else <c>Toolkit.Cli.dll</c> next to
    /// the running application (the CLI itself, installed or built, and the tests); else the <c>toolkit</c> .NET tool
    /// on PATH or in <c>~/.dotnet/tools</c>; else a build of <c>src/Cli</c> above the current folder (a repository
    /// checkout).
    /// </summary>
    /// <exception cref="FileNotFoundException">None found; the message says how to install one.</exception>
    public static IReadOnlyList<string> Command()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } custom)
            return File.Exists(custom)
                ? Start(custom) : throw new FileNotFoundException($"{OverrideVariable}={custom} does not exist.",
                    custom);
        var local = Path.Combine(AppContext.BaseDirectory, "Toolkit.Cli.dll");
        if (File.Exists(local)) return Start(local);
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator,
            StringSplitOptions.RemoveEmptyEntries);
        foreach (var dir in path.Append(Path.Combine(home, ".dotnet", "tools")))
            if (File.Exists(Path.Combine(dir, "toolkit"))) return [Path.Combine(dir, "toolkit")];
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            foreach (var configuration in new[] { "Release", "Debug" })
            {
                var candidate = Path.Combine(dir.FullName, "src", "Cli", "bin", configuration, "net10.0",
                    "Toolkit.Cli.dll");
                if (File.Exists(candidate)) return Start(candidate);
            }
        throw new FileNotFoundException(
            "No toolkit command was found to start the MPI ranks. Install it: dotnet tool install -g LmToolkit.Cli " +
            $"(add --add-source artifacts/feed for a local build), or set {OverrideVariable} to a Toolkit.Cli.dll.");
    }

    private static IReadOnlyList<string> Start(string file) =>
        file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ["dotnet", file] : [file];
}
