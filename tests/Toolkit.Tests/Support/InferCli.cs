using Toolkit.BatchInference;

namespace Toolkit.Tests.Support;

/// <summary><c>toolkit infer run</c> as a user runs it, in its own process, and the result it writes.</summary>
internal static class InferCli
{
    /// <summary>Runs <c>toolkit infer run ARGUMENTS --json FILE</c> (FILE in <paramref name="folder"/>); fails the
    /// test unless it exits 0 (with its output); returns the result it wrote and what it printed.</summary>
    public static (InferResult Result, string Output) Run(string folder, IEnumerable<string> arguments,
        TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var summary = Path.Combine(folder, $"summary-{Guid.NewGuid():N}.json");
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "run", .. arguments, "--json",
            summary], timeout, environment: environment);
        Assert.True(code == 0, output);
        return (Read(summary), output);
    }

    /// <summary>A result as <c>--json</c> or the job folder's <c>result.json</c> holds it.</summary>
    public static InferResult Read(string path) => System.Text.Json.JsonSerializer.Deserialize<InferResult>(
        File.ReadAllText(path), Toolkit.Runtime.ToolkitJson.Options)!;
}
