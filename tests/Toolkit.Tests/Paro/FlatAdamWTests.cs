using Toolkit.Paro;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Tests.Paro;

/// <summary>The fused CPU pass of <see cref="FlatAdamW"/> against libtorch's unfused sequence and
/// torch.optim.AdamW.</summary>
public sealed class FlatAdamWTests
{
    [Theory]
    [InlineData(1_000_003, 1)]     // several threads' chunks and a scalar tail
    [InlineData(1_000_003, 2)]
    [InlineData(37, 2)]            // shorter than one chunk: one thread, mostly the tail
    public void FusedPass_EqualsTheUnfusedSequence_OnAViewAtAnOffset(long elements, int threads)
    {
        TorchRuntime.EnsureInitialized();
        var previous = get_num_threads();
        set_num_threads(threads);
        try
        {
            using var generator = new Generator(7);
            var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1 };
            using var fused = new FlatAdamW(elements, CPU, options);
            using var unfused = new FlatAdamW(elements, CPU, options) { ForceUnfused = true };
            using var storage = randn(elements + 11, generator: generator);
            // a contiguous view that does not start at the storage's start
            var parameters = storage.narrow(0, 7, elements);
            using var reference = parameters.clone();
            // the storage around the view
            using var outside = cat([storage.narrow(0, 0, 7), storage.narrow(0, elements + 7, 4)]);
            for (var step = 0; step < 5; step++)
            {
                using var gradient = randn(elements, generator: generator);
                fused.Update(parameters, gradient);
                unfused.Update(reference, gradient);
            }
            AssertClose(reference, parameters, "parameters");
            AssertClose(unfused.ExpAvg, fused.ExpAvg, "first moment");
            AssertClose(unfused.ExpAvgSq, fused.ExpAvgSq, "second moment");
            using var after = cat([storage.narrow(0, 0, 7), storage.narrow(0, elements + 7, 4)]);
            Assert.True(after.eq(outside).all().item<bool>(), "the fused pass wrote outside the view");
        }
        finally
        {
            set_num_threads(previous);
        }
    }

    [Fact]
    public void FusedPass_TracksTorchOptimAdamW()
    {
        TorchRuntime.EnsureInitialized();
        using var generator = new Generator(3);
        var options = new AdamWOptions { LearningRate = 3e-3, WeightDecay = 0.01 };
        using var weights = randn(100_000, generator: generator);
        using var flat = weights.clone();
        using var parameter = new TorchSharp.Modules.Parameter(weights.clone());
        var torchOptimizer = optim.AdamW([parameter], lr: options.LearningRate, beta1: options.Beta1,
            beta2: options.Beta2, eps: options.Epsilon, weight_decay: options.WeightDecay);
        using var fused = new FlatAdamW(flat.numel(), CPU, options);
        for (var step = 0; step < 10; step++)
        {
            using var gradient = randn(flat.numel(), generator: generator);
            parameter.grad = gradient.clone();
            torchOptimizer.step();
            fused.Update(flat, gradient);
        }
        using var _ = no_grad();
        AssertClose(parameter, flat, "parameters after 10 steps");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        using var _ = no_grad();
        var error = (actual - expected).norm().item<float>() / Math.Max(expected.norm().item<float>(), 1e-30f);
        Assert.True(error <= 1e-6, $"{what}: relative error {error:E2}");
    }
}
