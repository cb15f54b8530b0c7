using Toolkit.Paro;

namespace Toolkit.Tests.Paro;

public sealed class ShardingStrategyTests
{
    [Fact]
    public void All27Codes_Parse_AndTheEffectiveRuleSelects14()
    {
        var all = ShardingStrategy.All.ToList();
        Assert.Equal(27, all.Count);
        Assert.All(all, s => Assert.Equal(s, ShardingStrategy.Parse(s.Code, allowIneffective: true)));
        var effective = ShardingStrategy.Effective.Select(s => s.Code).ToHashSet();
        Assert.Equal(1 + 4 + 9, effective.Count);   // os = N: 1 choice of (p, g); os = I: 2 x 2; os = G: 3 x 3
        Assert.All(ShardingStrategy.Trained, s => Assert.Contains(s.Code, effective));
    }

    [Theory]
    [InlineData("ddp", "NNN")]
    [InlineData("zero1", "NNG")]
    [InlineData("ZeRO2", "NGG")]
    [InlineData("zero3", "GGG")]
    [InlineData("mics", "III")]
    [InlineData("hsdp", "III")]
    [InlineData("nig", "NIG")]
    public void Aliases_AndLowerCase_Parse(string text, string code) => Assert.Equal(code,
        ShardingStrategy.Parse(text).Code);

    [Theory]
    [InlineData("NGN", "gradients are sharded more finely")]
    [InlineData("GGN", "not effective")]
    [InlineData("INN", "parameters are sharded more finely")]
    public void Ineffective_IsRejected_WithTheReasonAndTheValidList(string code, string reason)
    {
        var e = Assert.Throws<ShardingPlanException>(() => ShardingStrategy.Parse(code));
        Assert.Contains(reason, e.Message);
        Assert.Contains("NIG", e.Message);
        Assert.Contains("zero3=GGG", e.Message);
    }

    [Theory]
    [InlineData("NI")]
    [InlineData("NXG")]
    [InlineData("")]
    [InlineData("zero4")]
    public void Malformed_IsRejected_WithTheGrammar(string code)
    {
        var e = Assert.Throws<ShardingPlanException>(() => ShardingStrategy.Parse(code));
        Assert.Contains("three letters", e.Message);
        Assert.Contains("Valid:", e.Message);
    }
}
