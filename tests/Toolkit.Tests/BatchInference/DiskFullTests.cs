using Toolkit.BatchInference;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// A job whose output folder fills up (a small tmpfs mounted over it; needs root, as CI runs) stops with one line
/// naming the folder, commits nothing partial, and completes exactly once when resumed after space is freed.
/// </summary>
public sealed class DiskFullTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-diskfull-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void AFullOutputFolder_StopsTheJobWithOneLine_AndAResumeAfterSpaceIsFreedCompletesIt()
    {
        var input = Path.Combine(_folder.Path, "in.jsonl");
        SentenceDataset.Write(input, 200, seed: 2);
        var folder = Path.Combine(_folder.Path, "full");
        var output = Path.Combine(folder, InferLayout.OutputFolder);
        Directory.CreateDirectory(output);
        var (code, said) = Repository.Run("mount", ["-t", "tmpfs", "-o", "size=400k", "tmpfs", output],
            TimeSpan.FromSeconds(30));
        Assert.True(code == 0, $"mounting a tmpfs needs root (CI runs as root): {said}");
        try
        {
            (code, said) = Repository.Run("dotnet", [Repository.CliDll, "infer", "run", "--input", input,
                "--runs-dir", _folder.Path, "--job-name", "full", "--launcher", "inproc", "--shard-size", "20"],
                TimeSpan.FromMinutes(3));
            Assert.True(code == 1, said);
            var error = Assert.Single(said.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
            Assert.Contains($"{output} is full (disk full: No space left on device", error);
            Assert.Contains($"toolkit infer resume {folder}", error);
            // every committed part is whole (20 lines); no temporary file is left
            var committed = InferOutput.Committed(folder);
            Assert.InRange(committed.Count, 1, 9);
            Assert.All(committed, s => Assert.Equal(20, File.ReadLines(Path.Combine(folder, s.Output!)).Count()));
            Assert.Empty(Directory.GetFiles(output, ".*"));

            (code, said) = Repository.Run("mount", ["-o", "remount,size=64m", output], TimeSpan.FromSeconds(30));
            Assert.True(code == 0, said);
            (code, said) = Repository.Run("dotnet", [Repository.CliDll, "infer", "resume", folder],
                TimeSpan.FromMinutes(3));
            Assert.True(code == 0, said);
            Assert.True(InferOutput.Verify(folder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        }
        finally
        {
            Repository.Run("umount", ["-l", output], TimeSpan.FromSeconds(30));
        }
    }
}
