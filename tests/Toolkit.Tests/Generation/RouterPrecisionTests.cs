using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;
using static TorchSharp.torch;

namespace Toolkit.Tests.Generation;

/// <summary>
/// Where the rollout engine routes a mixture of experts: by default in its compute type (bf16 here, as serving engines
/// route); with <c>routerFp32</c> the routers alone stay in fp32 and their logits are the fp32 product, bit for bit,
/// while every other matrix (the shared expert's gate and the experts' gate projections included) keeps the engine's
/// numerics.
/// </summary>
public sealed class RouterPrecisionTests : IDisposable
{
    private readonly TemporaryFolder _root = new("router-precision-");

    public RouterPrecisionTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    [Theory]
    [InlineData("mixtral", "model.layers.0.block_sparse_moe.gate")]
    [InlineData("qwen2_moe", "model.layers.0.mlp.gate")]
    public void RouterFp32_KeepsOnlyTheRoutersInFp32_AndTheirLogitsAreTheFp32Product(string arch, string router)
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, arch));
        using var serving = EngineWeights.FromFolder(hf, Numerics.Bf16, CPU);
        using var fp32Routers = EngineWeights.FromFolder(hf, Numerics.Bf16, CPU, routerFp32: true);
        var names = ModelLayout.Of(hf.Config).Select(p => p.Name).ToList();
        var routers = names.Where(n => n.EndsWith(".gate.weight", StringComparison.Ordinal)).ToList();
        Assert.Contains(router + ".weight", routers);
        foreach (var name in names)
        {
            Assert.Equal(ScalarType.BFloat16, serving[name].dtype);
            Assert.Equal(routers.Contains(name) ? ScalarType.Float32 : ScalarType.BFloat16, fp32Routers[name].dtype);
        }
        if (arch == "qwen2_moe")
            Assert.Contains(names, n => n.Contains("shared_expert_gate", StringComparison.Ordinal));

        using var scope = NewDisposeScope();
        var x = randn([5, hf.Config.Hidden], generator: new TorchSharp.torch.Generator(3)).to(ScalarType.BFloat16);
        var weight = hf.ReadParameter(router + ".weight", ScalarType.Float32);
        var expected = nn.functional.linear(x.to(ScalarType.Float32), weight);
        var logits = fp32Routers.Router(x, router);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(logits.equal(expected).all().item<bool>());
        var servingLogits = serving.Router(x, router);
        Assert.Equal(ScalarType.BFloat16, servingLogits.dtype);
        Assert.True(servingLogits.equal(nn.functional.linear(x, weight.to(ScalarType.BFloat16))).all().item<bool>());
    }

    [Fact]
    public void TheGptRouter_IsKeptInFp32_AtFp8()
    {
        var config = new GptConfig(256, 16, 1, 2, 16, Experts: 4, TopK: 2);
        var flat = new float[ModelLayout.Count(config)];
        var random = new Random(5);
        for (var i = 0; i < flat.Length; i++) flat[i] = (float)(random.NextDouble() - 0.5);
        using var weights = EngineWeights.FromFlat(config, flat, Numerics.Fp8, CPU, routerFp32: true);
        var names = ModelLayout.Of(config).Select(p => p.Name).ToList();
        var router = Assert.Single(names, n => n.EndsWith("router.weight", StringComparison.Ordinal));
        Assert.Equal(ScalarType.Float32, weights[router].dtype);
        Assert.Equal(ScalarType.BFloat16, weights.ComputeType);
    }
}
