using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A model whose forward runs a sequence of blocks (the transformer layers), which layer-wise sharded execution gathers
/// block by block (<see cref="Paro.ShardingPlan.Layerwise"/>). The model's other parameters (embeddings, final norm)
/// form the root, gathered at the micro-step's start and released when the blocks' backward starts. The root may
/// therefore be read after the blocks only by the final norm and the tied output (<see cref="TiedOutput"/>), and before
/// them only by operations whose backward needs no parameter values (embedding lookups).
/// </summary>
public interface ILayeredModule
{
    /// <summary>The blocks, in the order the forward runs them; each maps [.., C] activations to the same
    /// shape.</summary>
    IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks { get; }

    /// <summary>When set, the forward runs block i as <c>BlockRunner(i, x)</c> instead of calling it (set by the
    /// trainer for the length of a step).</summary>
    Func<int, Tensor, Tensor>? BlockRunner { get; set; }

    /// <summary>
    /// The name (as <c>named_parameters</c> gives it) of a root parameter the forward reads twice, once before the
    /// blocks and once after (GPT's token embedding, which the tied output layer reads again), or null (the default).
    /// </summary>
    string? TiedOutput => null;

    /// <summary>
    /// When set, the forward's read after the blocks reads this tensor instead of <see cref="TiedOutput"/>: a separate
    /// leaf over the same values (set by the trainer for the length of a step). Autograd then accumulates that read's
    /// gradient as soon as its backward runs; through one leaf it would hold it until the first read's backward, after
    /// every block's. A model without a tied output (the default) ignores it.
    /// </summary>
    Tensor? TiedOutputAlias { get => null; set { } }
}
