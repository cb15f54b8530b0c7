using Toolkit.Tests.Support;

namespace Toolkit.Tests.Structure;

/// <summary>
/// Files a newcomer can read: no hand-written line over 120 characters, no code file over 400 lines. Generated files
/// are left out: the solution file, approved texts, notebooks (JSON), data sets and build output.
/// </summary>
public sealed class SourceShapeTests
{
    private const int MaxLine = 120;
    private const int MaxLines = 400;

    private static readonly string[] Written =
        [".cs", ".sh", ".py", ".proto", ".props", ".csproj", ".md", ".json5", ".yml", ".yaml"];

    private static readonly string[] Code = [".cs", ".sh", ".py"];

    private static readonly string[] Skipped =
        ["bin", "obj", "artifacts", ".git", "node_modules", "Approved", "runs", "TestResults"];

    [Fact]
    public void HandWrittenLines_AreAtMost120Characters()
    {
        var found = LongLines(Files(Written));
        Assert.True(found.Count == 0, $"lines over {MaxLine} characters:\n{string.Join('\n', found)}");
    }

    [Fact]
    public void CodeFiles_AreAtMost400Lines()
    {
        var big = Files(Code).Select(f => (f, Lines: File.ReadLines(f).Count())).Where(f => f.Lines > MaxLines)
            .Select(f => $"{Path.GetRelativePath(Repository.Root, f.f)} ({f.Lines} lines)").ToList();
        Assert.True(big.Count == 0, $"files over {MaxLines} lines; split them:\n{string.Join('\n', big)}");
    }

    [Fact]
    public void TheScan_SeesTheSources_AndReportsALongLine()
    {
        var files = Files(Written).Select(f => Path.GetRelativePath(Repository.Root, f)).ToList();
        Assert.Contains(Path.Combine("src", "Toolkit", "Jobs", "JobHost.cs"), files);
        Assert.Contains(Path.Combine("build", "emulate-cluster.sh"), files);
        Assert.Contains(Path.Combine(".ci", "run"), files);
        Assert.Contains("README.md", files);
        Assert.DoesNotContain(files, f => f.Split(Path.DirectorySeparatorChar).Intersect(Skipped).Any());
        using var folder = new TemporaryFolder("toolkit-shape-");
        var file = Path.Combine(folder.Path, "long.cs");
        File.WriteAllLines(file, [new string('x', MaxLine), new string('y', MaxLine + 1)]);
        Assert.Equal([$"{Path.GetRelativePath(Repository.Root, file)}:2 ({MaxLine + 1})"], LongLines([file]));
    }

    private static List<string> LongLines(IEnumerable<string> files) =>
        [.. files.SelectMany(f => File.ReadLines(f).Select((line, i) => (File: f, Line: i + 1, line.Length)))
            .Where(l => l.Length > MaxLine)
            .Select(l => $"{Path.GetRelativePath(Repository.Root, l.File)}:{l.Line} ({l.Length})")];

    /// <summary>The repository's files with one of <paramref name="extensions"/>, outside build output and generated
    /// folders; under <c>datasets/</c> only its README.</summary>
    private static IEnumerable<string> Files(string[] extensions)
    {
        var root = Repository.Root;
        var pending = new Stack<string>([root]);
        while (pending.Count > 0)
        {
            var folder = pending.Pop();
            foreach (var sub in Directory.GetDirectories(folder))
                if (!Skipped.Contains(Path.GetFileName(sub))) pending.Push(sub);
            foreach (var file in Directory.GetFiles(folder))
            {
                var relative = Path.GetRelativePath(root, file);
                if (relative.StartsWith("datasets", StringComparison.Ordinal) && Path.GetFileName(file) != "README.md")
                    continue;
                if (extensions.Contains(Path.GetExtension(file)) || Path.GetFileName(file) == "run"
                    && Path.GetFileName(folder) == ".ci")
                    yield return file;
            }
        }
    }
}
