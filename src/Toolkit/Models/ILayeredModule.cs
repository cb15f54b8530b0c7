using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A model whose forward runs a sequence of blocks (the transformer layers), which layer-wise sharded
/// execution gathers block by block (<see cref="Paro.ShardingPlan.Layerwise"/>). The model's other
/// parameters (embeddings, final norm) form the root, kept gathered for the whole micro-step.
/// </summary>
public interface ILayeredModule
{
    /// <summary>The blocks, in the order the forward runs them; each maps [.., C] activations to the same shape.</summary>
    IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks { get; }

    /// <summary>When set, the forward runs block i as <c>BlockRunner(i, x)</c> instead of calling it (set by the trainer for the length of a step).</summary>
    Func<int, Tensor, Tensor>? BlockRunner { get; set; }
}
