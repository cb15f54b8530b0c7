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

    /// <summary>
    /// The JSON carries the plan's own numbers, and those are the paper's model states (PaRO §3.1, bf16 mixed
    /// precision: 2Ψ bytes of parameters, 2Ψ of gradients and 12Ψ of optimizer states, divided by 1, m or n by the
    /// level of each), for LLaMA-7B on 16 GPUs in groups of 8.
    /// </summary>
    [Fact]
    public void Json_CarriesThePlansNumbers_WhichAreThePapersModelStates()
    {
        var plan = new ParoPlanOptions { Model = "llama-7b", Gpus = 16 }.Plan();
        using var doc = JsonDocument.Parse(ParoPlanJson.From(plan).Serialize());
        var rows = doc.RootElement.GetProperty("strategies").EnumerateArray().ToDictionary(r
            => r.GetProperty("name").GetString()!);
        const double psi = 6.74e9;
        double Share(char level) => level switch { 'N' => 1, 'I' => 8, _ => 16 };
        Assert.Equal(plan.Strategies.Count, rows.Count);
        foreach (var estimate in plan.Strategies)
        {
            var row = rows[estimate.Strategy.Code];
            var memory = row.GetProperty("memoryBytesPerRank");
            var code = estimate.Strategy.Code;
            Assert.Equal(2 * psi / Share(code[0]), memory.GetProperty("params").GetDouble(), 1e-6 * psi);
            Assert.Equal(2 * psi / Share(code[1]), memory.GetProperty("grads").GetDouble(), 1e-6 * psi);
            Assert.Equal(12 * psi / Share(code[2]), memory.GetProperty("optimizer").GetDouble(), 1e-6 * psi);
            Assert.Equal(estimate.Memory.Total, memory.GetProperty("total").GetDouble());
            Assert.Equal(estimate.InterBytesPerStep, row.GetProperty("interBytesPerStep").GetDouble());
            Assert.Equal(estimate.StepSeconds, row.GetProperty("predictedStepSeconds").GetDouble());
            Assert.Equal(estimate.Feasible, row.GetProperty("feasible").GetBoolean());
        }
        Assert.Equal(plan.Recommended?.Code, doc.RootElement.GetProperty("recommended").GetString());
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
        Assert.Contains("llama-65b",
            Assert.Throws<ArgumentException>(() => new ParoPlanOptions { Model = "gpt-5" }.Plan()).Message);
        Assert.Equal("GroupSize", Assert.Throws<ArgumentOutOfRangeException>(() => new ParoPlanOptions { Gpus = 12,
            GpusPerNode = 8 }.Plan()).ParamName);
    }
}
