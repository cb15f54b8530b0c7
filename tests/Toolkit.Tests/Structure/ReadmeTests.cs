using System.Text.RegularExpressions;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Structure;

/// <summary>
/// The README is short and every command in it works: its two commands are the ones the build and CI run, the
/// quickstart runs as written, and each tour block (a <c>```bash</c> block after the two commands) runs as a script in
/// a fresh folder that sees the repository's <c>src</c> and <c>datasets</c>.
/// </summary>
public sealed partial class ReadmeTests
{
    private static string ReadmePath => Path.Combine(Repository.Root, "README.md");

    /// <summary>The README's <c>```bash</c> blocks, in order.</summary>
    private static IReadOnlyList<string> Blocks() =>
        [.. BashBlock().Matches(File.ReadAllText(ReadmePath)).Select(m => m.Groups[1].Value.Trim())];

    public static TheoryData<int, string> TourBlocks()
    {
        var data = new TheoryData<int, string>();
        var blocks = Blocks();
        for (var i = 2; i < blocks.Count; i++)
            data.Add(i, blocks[i].Split('\n').First(l => l.StartsWith("$T ", StringComparison.Ordinal)));
        return data;
    }

    [Fact]
    public void TheReadme_IsShort_AndItsTwoCommandsAreWhatTheBuildAndCiRun()
    {
        var readme = File.ReadAllLines(ReadmePath);
        Assert.True(readme.Length <= 150,
            $"README.md has {readme.Length} lines; keep it at most 150 (details go to docs/)");
        var blocks = Blocks();
        Assert.Equal("./build.sh quickstart", blocks[0]);
        Assert.Equal("./build.sh test", blocks[1]);
        var ci = File.ReadAllLines(Path.Combine(Repository.Root, ".ci", "run"))
            .Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#')).ToList();
        Assert.Equal("./build.sh test", ci[^1].Trim());
        Assert.True(TourBlocks().Count() >= 5, "the tour has a block per system and one for models");
        foreach (Match link in DocLink().Matches(string.Join('\n', readme)))
            Assert.True(File.Exists(Path.Combine(Repository.Root, link.Groups[1].Value)), $"{link.Value} is missing");
    }

    [Fact]
    public void TheQuickstartCommand_RunsTheMainJob()
    {
        using var runs = new TemporaryFolder("toolkit-readme-runs-");
        var (code, output) = Repository.Run("bash", ["-c", Blocks()[0]], TimeSpan.FromMinutes(5), Repository.Root,
            new Dictionary<string, string> { ["TOOLKIT_RUNS_DIR"] = runs.Path });
        Assert.True(code == 0, output);
        var run = Assert.Single(Directory.GetDirectories(runs.Path));
        Assert.True(File.Exists(Path.Combine(run, "report.html")), output);
        Assert.Contains("loss", output);
    }

    [Theory]
    [MemberData(nameof(TourBlocks))]
    public void EveryTourBlock_Runs(int block, string firstCommand)
    {
        using var folder = new TemporaryFolder("toolkit-readme-");
        foreach (var shared in new[] { "src", "datasets" })
            Directory.CreateSymbolicLink(Path.Combine(folder.Path, shared), Path.Combine(Repository.Root, shared));
        File.WriteAllText(Path.Combine(folder.Path, "block.sh"), Blocks()[block] + "\n");
        var (code, output) = Repository.Run("bash", ["-euo", "pipefail", "block.sh"], TimeSpan.FromMinutes(5),
            folder.Path, new Dictionary<string, string> { ["TOOLKIT_RUNS_DIR"] = "" });
        Assert.True(code == 0, $"README block {block} ({firstCommand}) failed with exit code {code}:\n{output}");
        Assert.DoesNotContain("error:", output);
        // Every block writes something: a run folder, a model folder or a JSON result.
        Assert.True(Directory.GetFileSystemEntries(folder.Path).Length > 3,
            $"README block {block} wrote nothing:\n{output}");
    }

    [GeneratedRegex(@"```bash\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex BashBlock();

    [GeneratedRegex(@"\]\((docs/[^)#]+)")]
    private static partial Regex DocLink();
}
