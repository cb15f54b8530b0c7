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

    /// <summary>The plan's table (what the CLI prints and the magic shows): a row per strategy, its
    /// numbers.</summary>
    [Fact]
    public void PlanTable_HasARowPerStrategy_WithTheEstimatesInTheirUnits_AndTheRecommendation()
    {
        var plan = new ParoPlanOptions { Model = "llama-65b", Gpus = 64, Accumulation = 4 }.Plan();
        var table = plan.ToTable();
        Assert.Equal(plan.Strategies.Count, table.Rows.Count);
        Assert.All(table.Rows, row => Assert.Equal(table.Columns.Count, row.Count));
        var zero3 = plan.Strategies.Single(e => e.Strategy.Code == "GGG");
        var row = table.Rows.Single(r => r[0] == "GGG (ZeRO-3)");
        Assert.Equal((zero3.Memory.Total / (1024.0 * 1024 * 1024)).ToString("F1",
            System.Globalization.CultureInfo.InvariantCulture), row[table.Columns.ToList().IndexOf("total GiB")]);
        Assert.Equal($"recommended: {plan.Recommended!.Code}", table.Notes[0]);
        var text = table.ToText().Split('\n');
        Assert.StartsWith("strategy", text[1]);
        // Aligned: every row's cells end where their headings end.
        var end = text[1].IndexOf("tokens/s", StringComparison.Ordinal) + "tokens/s".Length;
        Assert.All(text.Skip(2).Take(table.Rows.Count), line => Assert.Equal(end, line.Length));
    }

    /// <summary><c>paro plan --layerwise</c>: the engine's layer-wise schedule per strategy.</summary>
    [Fact]
    public void LayerwisePlan_HoldsTwoBlocksForZero3_AndSendsTheBlocksTwice()
    {
        var options = new ParoPlanOptions { Model = "llama-65b", Gpus = 64, Accumulation = 4, Gathers = 1 };
        var (whole, layerwise) = (options.Plan(), (options with { Layerwise = true }).Plan());
        var ggg = (whole.Strategies.Single(e => e.Strategy.Code == "GGG"),
            layerwise.Strategies.Single(e => e.Strategy.Code == "GGG"));
        var model = ModelSpec.Llama65B;
        var block = (model.TotalParameters - model.RootParameters!.Value) / model.Layers;
        // Two blocks' bf16 parameters and gradients in flight, not one layer's parameters twice the whole model's.
        Assert.Equal(2 * 2 * (2 * block), ggg.Item2.Memory.GatheredParameters, 0.001 * block);
        // The same model states, but for the padding of each unit to the ranks.
        Assert.Equal(ggg.Item1.Memory.ModelStates, ggg.Item2.Memory.ModelStates, 1e-6 * ggg.Item1.Memory.ModelStates);
        // The blocks are gathered twice: more inter-node bytes than one gather of the whole model per micro-step.
        Assert.True(ggg.Item2.InterBytesPerStep > ggg.Item1.InterBytesPerStep);
        // Replicated parameters and gradients (NNN) move the same bytes either way and hold nothing transient.
        var nnn = (whole.Strategies.Single(e => e.Strategy.Code == "NNN"),
            layerwise.Strategies.Single(e => e.Strategy.Code == "NNN"));
        Assert.Equal(nnn.Item1.InterBytesPerStep, nnn.Item2.InterBytesPerStep, 1e-6 * nnn.Item1.InterBytesPerStep);
        Assert.Equal(0, nnn.Item2.Memory.GatheredParameters);
        Assert.Contains(layerwise.Reasons, r => r.StartsWith("Layer-wise execution", StringComparison.Ordinal));
        var explicitModel = new ParoPlanOptions { Parameters = 1e9, Layerwise = true };
        Assert.Contains("embeddings", Assert.Throws<ArgumentException>(() => explicitModel.Plan()).Message);
    }
}
