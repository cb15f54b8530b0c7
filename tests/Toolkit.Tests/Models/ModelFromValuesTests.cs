using Toolkit.Models;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Models;

/// <summary>A model made from a flat vector inside a DisposeScope outlives the scope whole: every parameter is still
/// there, and copying another vector into its parameters in order gives that vector's model.</summary>
public sealed class ModelFromValuesTests
{
    [Fact]
    public void AModelMadeInsideADisposeScope_KeepsEveryParameter_AndTakesNewValuesInOrder()
    {
        TorchRuntime.EnsureInitialized();
        var config = GptConfig.Tiny;
        var random = new Random(1);
        float[] Draw() => [.. Enumerable.Range(0, (int)config.ParameterCount)
            .Select(_ => (float)(random.NextDouble() * 0.2 - 0.1))];
        var (first, second) = (Draw(), Draw());
        CausalLanguageModel model, expected;
        using (NewDisposeScope()) model = ModelSource.FromValues(config, first);
        using (NewDisposeScope()) expected = ModelSource.FromValues(config, second);
        using var _ = model;
        using var __ = expected;
        Assert.Equal(config.ParameterCount, model.parameters().Sum(p => p.numel()));
        using (NewDisposeScope())
        using (no_grad())
        {
            using var values = tensor(second);
            long offset = 0;
            foreach (var p in model.parameters())
            {
                p.copy_(values.narrow(0, offset, p.numel()).view(p.shape));
                offset += p.numel();
            }
        }
        using var scope = NewDisposeScope();
        var tokens = tensor(new long[] { 1, 2, 3, 4 }, [1, 4]);
        Assert.Equal(0f, (expected.call(tokens) - model.call(tokens)).abs().max().item<float>());
    }
}
