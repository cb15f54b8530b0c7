using System.Text.Json;
using Toolkit.LlamaCpp;
using Toolkit.Runtime;
using Toolkit.Tests.Approval;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Generation;

/// <summary>
/// <c>bench generate</c> end to end on a tiny folder (its numbers belong to the benchmark, not to this test): one row
/// per batch size with both engines' rates and their ratio, the load measurement, and the JSON shape scripts read.
/// </summary>
public sealed class GenerateBenchmarkTests : IDisposable
{
    private readonly TemporaryFolder _root = new("bench-generate-");

    public GenerateBenchmarkTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Report_HasARowPerBatch_BothEnginesRates_AndTheLoadRatio()
    {
        var folder = TinyModels.Write(_root.Path, "llama");
        var report = GenerateBenchmark.Run(new GenerateBenchmarkOptions
        {
            Model = folder, Batches = "1,3", Prompt = 6, NewTokens = 5, Threads = 1, LoadModel = folder,
        });
        Assert.Equal([1, 3], report.Rows.Select(r => r.Batch));
        Assert.All(report.Rows, r =>
        {
            Assert.True(r.TokensPerSecond > 0 && r.LlamaCppTokensPerSecond > 0 && r.PrefillTokensPerSecond > 0
                && r.LlamaCppPrefillTokensPerSecond > 0);
            Assert.Equal(r.TokensPerSecond / r.LlamaCppTokensPerSecond, r.OverLlamaCpp, 9);
        });
        Assert.Equal(1, report.Threads);
        Assert.NotNull(report.Load);
        Assert.Equal(new FileInfo(Path.Combine(folder, "model.safetensors")).Length, report.Load!.Bytes);
        Assert.Equal(report.Load.LoadSeconds / report.Load.ReadSeconds, report.Load.LoadOverRead, 9);
        Approvals.Verify("json.bench-generate", JsonShape.Of(JsonSerializer.Serialize(report, ToolkitJson.Options)));
    }

    [Fact]
    public void Options_RefuseAPresetAndBadBatches()
    {
        Assert.Equal("Model",
            Assert.Throws<ArgumentOutOfRangeException>(new GenerateBenchmarkOptions { Model
                = "tiny" }.Check).ParamName);
        Assert.Equal("Batches",
            Assert.Throws<ArgumentOutOfRangeException>(new GenerateBenchmarkOptions { Batches
                = "1,x" }.Check).ParamName);
    }
}
