using System.Text.Json;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Cli;

/// <summary>
/// The CLI as users get it: the .NET tool package that <c>./build.sh pack</c> puts in artifacts/feed, installed into a
/// temporary tool path, starting an MPI job from a folder outside the repository (so no repository build can be found,
/// and TOOLKIT_CLI is not set): the installed tool is its own rank entry point.
/// </summary>
public sealed class CliToolTests
{
    [Fact]
    public void InstalledTool_RunsAnMpiJob_FromAFolderOutsideTheRepository()
    {
        var feed = Path.Combine(Repository.Root, "artifacts", "feed");
        var package = Directory.Exists(feed) ? Directory.GetFiles(feed,
            "LmToolkit.Cli.0.*.nupkg").OrderDescending().FirstOrDefault() : null;
        Assert.True(package is not null,
            $"No LmToolkit.Cli package in {feed}: run ./build.sh pack (./build.sh test does it).");
        var version = Path.GetFileNameWithoutExtension(package)["LmToolkit.Cli.".Length..];
        using var tools = new TemporaryFolder("toolkit-tool-");
        using var work = new TemporaryFolder("toolkit-outside-");
        Assert.False(work.Path.StartsWith(Repository.Root, StringComparison.Ordinal));
        var clean = new Dictionary<string, string> { ["TOOLKIT_CLI"] = "", ["TOOLKIT_RUNS_DIR"] = "" };

        var (installed, log) = Repository.Run("dotnet", ["tool", "install", "LmToolkit.Cli", "--add-source", feed,
            "--version", version, "--tool-path", tools.Path],
            TimeSpan.FromMinutes(5), work.Path, clean);
        Assert.True(installed == 0, $"dotnet tool install exited with {installed}:\n{log}");

        var toolkit = Path.Combine(tools.Path, "toolkit");
        var result = Path.Combine(work.Path, "result.json");
        var (code, output) = Repository.Run(toolkit, ["paro", "train", "--launcher", "mpi", "--ranks", "2",
            "--group-size", "1", "--steps", "2", "--json", result],
            TimeSpan.FromMinutes(3), work.Path, clean);
        Assert.True(code == 0, $"toolkit paro train --launcher mpi exited with {code}:\n{output}");
        using var json = JsonDocument.Parse(File.ReadAllText(result));
        Assert.Equal(2, json.RootElement.GetProperty("ranks").GetInt32());
        var run = json.RootElement.GetProperty("runPath").GetString()!;
        Assert.StartsWith(Path.Combine(work.Path, "runs"), run, StringComparison.Ordinal);
        Assert.Equal(2, Directory.GetFiles(Path.Combine(run, "outcomes"), "rank-*.json").Length);
        // the ranks ran the installed tool
        Assert.Contains(Path.Combine(tools.Path, ".store"), File.ReadAllText(Path.Combine(run, "log.txt")));

        var (bad, message) = Repository.Run(toolkit, ["paro", "train", "--strategy", "XYZ"], TimeSpan.FromMinutes(1),
            work.Path, clean);
        Assert.Equal(2, bad);
        Assert.StartsWith("error: 'XYZ' is not a PaRO strategy", message.Trim());
    }
}
