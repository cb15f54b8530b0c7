namespace Toolkit.Jobs;

/// <summary>
/// Finds the program started in other processes (each MPI or Slurm rank, batch-inference workers): the
/// <c>toolkit</c> command. It is the installed .NET tool (<c>dotnet tool install LmToolkit.Cli</c>), the CLI itself
/// when the CLI is what runs, or what <c>TOOLKIT_CLI</c> names: the one setting, documented in docs/cli.md (in a
/// checkout, <c>src/Cli/bin/Release/net10.0/Toolkit.Cli.dll</c>).
/// </summary>
internal static class RankEntryPoint
{
    /// <summary>Environment variable with the path of <c>Toolkit.Cli.dll</c> or of a <c>toolkit</c>
    /// executable.</summary>
    public const string OverrideVariable = "TOOLKIT_CLI";

    /// <summary>
    /// The command line that starts the toolkit command, without the verb: <c>$TOOLKIT_CLI</c>; else
    /// <c>Toolkit.Cli.dll</c> next to the running application (the CLI itself, installed or built, and the tests);
    /// else the <c>toolkit</c> .NET tool on PATH or in <c>~/.dotnet/tools</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">None found; the message says how to install one.</exception>
    public static IReadOnlyList<string> Command()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } custom)
            return File.Exists(custom) ? Start(custom)
                : throw new FileNotFoundException($"{OverrideVariable}={custom} does not exist.", custom);
        var local = Path.Combine(AppContext.BaseDirectory, "Toolkit.Cli.dll");
        if (File.Exists(local)) return Start(local);
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator,
            StringSplitOptions.RemoveEmptyEntries);
        foreach (var dir in path.Append(Path.Combine(home, ".dotnet", "tools")))
            if (File.Exists(Path.Combine(dir, "toolkit"))) return [Path.Combine(dir, "toolkit")];
        throw new FileNotFoundException(
            "No toolkit command was found to start the other processes (MPI ranks, workers). Install it: dotnet tool " +
            "install -g LmToolkit.Cli (add --add-source artifacts/feed --prerelease for a local build), or set " +
            $"{OverrideVariable} to a Toolkit.Cli.dll (in a checkout: src/Cli/bin/Release/net10.0/Toolkit.Cli.dll).");
    }

    private static IReadOnlyList<string> Start(string file) =>
        file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ["dotnet", file] : [file];
}
