using Toolkit.Checkpoints;
using System.Text;
using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Paro;
using Toolkit.Quickstart;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Approval;

/// <summary>What users and their scripts depend on, pinned: the CLI's help, the JSON shapes of results and benchmarks,
/// the checkpoint manifest.</summary>
public sealed class ApprovalTests : IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-approval-");

    public void Dispose() => _runs.Dispose();

    [Theory]
    [InlineData("toolkit")]
    [InlineData("info")]
    [InlineData("quickstart")]
    [InlineData("paro")]
    [InlineData("paro plan")]
    [InlineData("paro train")]
    [InlineData("paro compare")]
    [InlineData("collective plan")]
    [InlineData("bench")]
    [InlineData("bench paro")]
    [InlineData("bench collectives")]
    [InlineData("bench generate")]
    [InlineData("data corpus")]
    [InlineData("rl train")]
    [InlineData("rl experiment icepop")]
    [InlineData("bench rl")]
    [InlineData("infer")]
    [InlineData("infer run")]
    [InlineData("jobs")]
    [InlineData("model")]
    [InlineData("model init")]
    [InlineData("model info")]
    [InlineData("model export")]
    public void Help(string command)
    {
        string[] words = command == "toolkit" ? [] : command.Split(' ');
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, .. words, "--help"], TimeSpan.FromMinutes(1),
            _runs.Path,
            new Dictionary<string, string> { ["TOOLKIT_RUNS_DIR"] = "", ["COLUMNS"] = "120" });
        Assert.Equal(0, code);
        Approvals.Verify($"help.{command.Replace(' ', '.')}", output.Replace("Toolkit.Cli", "toolkit",
            StringComparison.Ordinal));
    }

    [Fact]
    public async Task ParoTrainResult_Shape()
    {
        var result = await ParoTrainJob.RunAsync(new ParoTrainOptions { Steps = 1,
            Launch = new() { RunsDirectory = _runs.Path }, Checkpoint = new() { Every = 1 } });
        Approvals.Verify("json.paro-train-result", JsonShape.Of(File.ReadAllText(Path.Combine(result.RunPath,
            JobHost.ResultFile))));
        Approvals.Verify("json.paro-train-config", JsonShape.Of(File.ReadAllText(Path.Combine(result.RunPath,
            "config.json"))));
        Approvals.Verify("json.checkpoint-manifest", JsonShape.Of(File.ReadAllText(Path.Combine(result.RunPath,
            "checkpoints", "step-1", CheckpointManifest.FileName))));
    }

    [Fact]
    public async Task QuickstartResult_Shape()
    {
        var result = await QuickstartJob.RunAsync(new QuickstartOptions { Steps = 2, Launch = new() { Ranks = 2,
            GroupSize = 1, RunsDirectory = _runs.Path } });
        Approvals.Verify("json.quickstart-result", JsonShape.Of(File.ReadAllText(Path.Combine(result.RunPath,
            JobHost.ResultFile))));
    }

    [Fact]
    public void BenchmarkReports_Shape()
    {
        var row = new BenchmarkRow("inproc", "NIG", 1, 0.1, 1000, 10, 20, [new RankMemory(0, 1, 2, 3, 4)], 0.1, 10, 20,
            0, 5.5) { RoundStepSeconds = [0.1, 0.11] };
        var paro = new ParoBenchmarkReport(new ParoBenchmarkOptions().Job, new ClusterSpec("c", 4, 2, 1, 1, 1, 1, 1, 1,
            1), [row],
            [new Ranking("inproc", 1, ["NIG"], ["NIG"], 1, 1, 0) { RoundsAgreement = 0.5, RecommendedOverBest = 1,
                GggOverBest = 1.5, Pairs = new ResolvedPairs(1, 1, 1) }], null, [new EngineOverheadRow(1, 0.1,
                    new EngineBaseline(0.05, 0.03, 0.01, 0.09, 0.1, 0.02), 1.25, 1.11)],
            new Dictionary<string, ClusterSpec> { ["inproc"] = new ClusterSpec("c", 4, 2, 1, 1, 1, 1, 1, 1, 1) });
        Approvals.Verify("json.bench-paro", JsonShape.Of(JsonSerializer.Serialize(paro, ToolkitJson.Options)));
        var collectives = new CollectiveBenchReport(new BenchTopology(2, 2, true, "1gbit", "0.2ms", false, 1e9, 1e-5,
            ["node0 eth0 ..."], false, 2, 1),
            [new BenchRow("ho-ring", 1 << 20, 0.01, 1e8, 10, 20, 0.01, 0, new Dictionary<string,
                double> { [Toolkit.Comm.HoRing.PhaseInterAllReduce] = 0.008 }, 0.01, 0.02, 3)], [new Speedup(1 << 20,
                    1.5, 1.2, 1.1)], "/runs/x");
        Approvals.Verify("json.bench-collectives", JsonShape.Of(JsonSerializer.Serialize(collectives,
            ToolkitJson.Options)));
    }
}

/// <summary>The shape of a JSON document: every path with the kind of its value (arrays by their first element), values
/// left out.</summary>
internal static class JsonShape
{
    public static string Of(string json)
    {
        using var document = JsonDocument.Parse(json);
        var lines = new StringBuilder();
        Walk(document.RootElement, "$", lines);
        return lines.ToString();
    }

    private static void Walk(JsonElement element, string path, StringBuilder lines)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                lines.Append(path).AppendLine(": object");
                foreach (var property in element.EnumerateObject()) Walk(
                    property.Value, $"{path}.{property.Name}", lines);
                break;
            case JsonValueKind.Array:
                lines.Append(path).AppendLine(": array");
                if (element.GetArrayLength() > 0) Walk(element[0], path + "[]", lines);
                break;
            default:
                lines.Append(path).Append(": ").AppendLine(element.ValueKind switch
                {
                    JsonValueKind.String => "string",
                    JsonValueKind.Number => "number",
                    JsonValueKind.True or JsonValueKind.False => "boolean",
                    _ => "null",
                });
                break;
        }
    }
}
