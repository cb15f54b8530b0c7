using System.Text.Json;
using Toolkit.Runtime;

namespace Toolkit.Tests.Runtime;

/// <summary>
/// Result files write a missing number as null (which pandas and every JSON reader take as missing), never "NaN".
/// </summary>
public sealed class ToolkitJsonTests
{
    private sealed record Row(double Measured, double Missing, double Overflowed, double? Optional);

    [Fact]
    public void NonFiniteNumbers_AreWrittenAsNull_AndReadBackAsNaN()
    {
        var row = new Row(1.5, double.NaN, double.PositiveInfinity, null);
        var text = JsonSerializer.Serialize(row, ToolkitJson.Compact);
        Assert.Equal("""{"measured":1.5,"missing":null,"overflowed":null,"optional":null}""", text);
        Assert.DoesNotContain("NaN", text);
        var back = JsonSerializer.Deserialize<Row>(text, ToolkitJson.Options)!;
        Assert.Equal(1.5, back.Measured);
        Assert.True(double.IsNaN(back.Missing) && double.IsNaN(back.Overflowed));
        Assert.Null(back.Optional);
    }

    private sealed record SingleRow(float Loss, float[] Values);

    [Fact]
    public void NonFiniteSingles_AreWrittenAsNull_AndReadBackAsNaN()
    {
        var row = new SingleRow(float.NaN, [0.5f, float.NegativeInfinity]);
        var text = JsonSerializer.Serialize(row, ToolkitJson.Compact);
        Assert.Equal("""{"loss":null,"values":[0.5,null]}""", text);
        var back = JsonSerializer.Deserialize<SingleRow>(text, ToolkitJson.Options)!;
        Assert.True(float.IsNaN(back.Loss) && float.IsNaN(back.Values[1]));
        Assert.Equal(0.5f, back.Values[0]);
    }

    [Fact]
    public void FilesWrittenBefore_WithNaNStrings_StillRead()
    {
        const string old = """{"measured":"NaN","missing":"Infinity","overflowed":"-Infinity"}""";
        var back = JsonSerializer.Deserialize<Row>(old, ToolkitJson.Options)!;
        Assert.True(double.IsNaN(back.Measured));
        Assert.Equal(double.PositiveInfinity, back.Missing);
        Assert.Equal(double.NegativeInfinity, back.Overflowed);
    }

    [Fact]
    public void AnRlResult_WithoutAHeldOutEvaluation_WritesNull()
    {
        var step = new Toolkit.Rl.RlStep(0, 0.5, 0.1, 0, double.NaN, 1, 0, 0, 0, 0, double.NaN, double.NaN,
            1, -1, 4, 100, 1, 1, 0.1, 10, 8, 0, 0, [8], []) { ClipFraction = 0.25, LearningRate = 1e-4 };
        using var json = JsonDocument.Parse(JsonSerializer.Serialize(step, ToolkitJson.Options));
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("heldOutAccuracy").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("entropyMasked").ValueKind);
        Assert.Equal(0.25, json.RootElement.GetProperty("clipFraction").GetDouble());
        Assert.Equal(1e-4, json.RootElement.GetProperty("learningRate").GetDouble());
        Assert.Equal(0, json.RootElement.GetProperty("droppedGroups").GetInt32());
    }
}
