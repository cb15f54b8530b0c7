using System.Text.Json;
using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

public sealed class CostModelPlanTests
{
    [Fact]
    public void Llama65B_On64Gpus_RecommendsAFeasiblePartialStrategy_FasterThanZero3()
    {
        var plan = new ParoPlanOptions { Model = "llama-65b", Gpus = 64, Accumulation = 4 }.Plan();
        Assert.NotNull(plan.Recommended);
        var best = plan.Strategies.Single(e => e.Strategy == plan.Recommended);
        var zero3 = plan.Strategies.Single(e => e.Strategy.Code == "GGG");
        Assert.True(best.Feasible);
        Assert.False(plan.Strategies.Single(e => e.Strategy.Code == "NNN").Feasible);
        Assert.True(best.StepSeconds < zero3.StepSeconds);
        Assert.Contains(plan.Reasons, r => r.Contains("GGG"));
    }

    [Fact]
    public void Json_HasTheDocumentedShape()
    {
        var json = ParoPlanJson.From(new ParoPlanOptions { Model = "llama-7b", Gpus = 16 }.Plan()).Serialize();
        using var doc = JsonDocument.Parse(json);
        var first = doc.RootElement.GetProperty("strategies")[0];
        foreach (var key in new[] { "name", "feasible", "intraBytesPerStep", "interBytesPerStep", "predictedStepSeconds" })
            Assert.True(first.TryGetProperty(key, out _), key);
        foreach (var key in new[] { "params", "grads", "optimizer", "total" })
            Assert.True(first.GetProperty("memoryBytesPerRank").TryGetProperty(key, out _), key);
        Assert.True(doc.RootElement.TryGetProperty("recommended", out _));
    }

    [Fact]
    public void NothingFits_SaysSo_WithTheSmallestNeed()
    {
        var plan = new ParoPlanOptions { Model = "llama-65b", Gpus = 8, DeviceMemory = 16 }.Plan();
        Assert.Null(plan.Recommended);
        Assert.Contains("No strategy fits", plan.Reasons[0]);
    }

    [Fact]
    public void BadPlanOptions_NameTheOption()
    {
        Assert.Contains("llama-65b", Assert.Throws<ArgumentException>(() => new ParoPlanOptions { Model = "gpt-5" }.Plan()).Message);
        Assert.Equal("GroupSize", Assert.Throws<ArgumentOutOfRangeException>(() => new ParoPlanOptions { Gpus = 12, GpusPerNode = 8 }.Plan()).ParamName);
    }
}
